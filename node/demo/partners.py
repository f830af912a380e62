"""The demo federation's parties and the convenant they sign (names, purposes, scopes)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from node.demo.synthetic import THEMES_BY_ORG_TYPE
from node.errors import VhnodeError

CONVENANT_ID = "zwb-casusoverleg-demo"
PURPOSE_VEELPLEGERS = "casusoverleg-veelplegers"
PURPOSE_HUISELIJK_GEWELD = "casusoverleg-huiselijk-geweld"
PURPOSE_JEUGD = "casusoverleg-jeugd"  # in the convenant, but no party may ask for it
NO_QUERY_RIGHT = "no_query_right"

COORDINATOR_NODE = "vh-zwb"
COORDINATOR_USER = "coordinator-vh-zwb"
DOWN_PARTNER = "ggz-zwb"

# Stage 2: the partner the demo asks for detail, its liaison, and the three categories
# asked: one shared without a person in between, one only after the liaison approved,
# one the convenant shares only for huiselijk geweld (asked for veelplegers: denied).
DETAIL_PARTNER = "politie-zwb"
LIAISON_USER = "liaison-politie-zwb"
CONTACT = "contactpersoon"
ANTECEDENTS = "samenvatting_antecedenten"
TRAJECT = "lopend_traject"
CARE = "zorgcontact"
SUPERVISION = "toezicht"
PURPOSE_NOT_ALLOWED = "purpose_not_allowed"


@dataclass(frozen=True)
class PartnerSpec:
    """One party of the demo convenant.

    ``excluded_theme`` is the one theme of the org type's registry that the convenant
    leaves out of scope, so some of the partner's registrations are invisible to
    bekendheid. ``core``: the "known to several partners" candidates are registered here.
    """

    node_id: str
    org_type: str
    organisation: str
    excluded_theme: str | None
    query_purposes: tuple[str, ...] = ()
    core: bool = True

    @property
    def scope_themes(self) -> tuple[str, ...]:
        return tuple(t for t in THEMES_BY_ORG_TYPE[self.org_type] if t != self.excluded_theme)


PARTNERS: tuple[PartnerSpec, ...] = (
    # The Veiligheidshuis registers one theme only ("casus"), so nothing is left out.
    PartnerSpec("vh-zwb", "veiligheidshuis", "Zorg- en Veiligheidshuis Regio Breda", None,
                (PURPOSE_VEELPLEGERS, PURPOSE_HUISELIJK_GEWELD)),
    PartnerSpec("politie-zwb", "politie", "Politie Eenheid Zeeland-West-Brabant", "hennep"),
    PartnerSpec("om-zwb", "om", "Openbaar Ministerie, Arrondissementsparket Zeeland-West-Brabant",
                "jeugd"),
    PartnerSpec("reclassering-zwb", "reclassering",
                "Reclassering Nederland, regio Zeeland-West-Brabant", "huiselijk_geweld",
                (PURPOSE_VEELPLEGERS,)),
    PartnerSpec("ggz-zwb", "ggz", "GGZ Breburg", "verslaving"),
    PartnerSpec("gemeente-breda", "gemeente", "Gemeente Breda, afdeling Veiligheid", "schuldhulp"),
    PartnerSpec("woningcorporatie-breda", "woningcorporatie", "WonenBreburg", "hennep",
                core=False),
)  # fmt: skip


@dataclass(frozen=True)
class DetailRuleSpec:
    """One ``[[detail_rules]]`` entry of the demo convenant (docs/protocol.md §5.6)."""

    provider: str
    category: str
    recipient_roles: tuple[str, ...]
    purposes: tuple[str, ...]
    approval: str = "none"
    max_retention_days: int = 180
    notify_hit: bool = False
    recipients: tuple[str, ...] = (COORDINATOR_NODE,)


_BOTH = (PURPOSE_VEELPLEGERS, PURPOSE_HUISELIJK_GEWELD)

CATEGORIES: tuple[tuple[str, str], ...] = (
    (CONTACT, "Naam en bereikbaarheid van de behandelaar of contactpersoon bij de partner."),
    (TRAJECT, "Of de partner een lopend traject heeft (strafzaak, zorg- of hulptraject) en in "
              "welke fase."),
    (SUPERVISION, "Lopend toezicht: soort, looptijd en bijzondere voorwaarden."),
    (ANTECEDENTS, "Samenvatting van de antecedenten die voor het casusoverleg van belang zijn, "
                  "zonder processen-verbaal."),
    (CARE, "Alleen of er zorgcontact is (ja/nee); geen diagnose, geen behandelinhoud."),
)  # fmt: skip

DETAIL_RULES: tuple[DetailRuleSpec, ...] = (
    # Politie: who to call, without a person in between; the antecedents only after the
    # politie liaison agreed (and the liaison hears of every hit); the running case only
    # for huiselijk geweld.
    DetailRuleSpec(DETAIL_PARTNER, CONTACT, ("coordinator", "liaison"), _BOTH),
    DetailRuleSpec(DETAIL_PARTNER, ANTECEDENTS, ("coordinator",), _BOTH, "liaison", 90, True),
    DetailRuleSpec(DETAIL_PARTNER, TRAJECT, ("coordinator",), (PURPOSE_HUISELIJK_GEWELD,)),
    DetailRuleSpec("om-zwb", TRAJECT, ("coordinator",), _BOTH),
    DetailRuleSpec("reclassering-zwb", SUPERVISION, ("coordinator",), _BOTH),
    DetailRuleSpec("reclassering-zwb", CONTACT, ("coordinator", "liaison"), _BOTH),
    # GGZ: medical confidentiality; whether there is care contact, for huiselijk geweld only.
    DetailRuleSpec("ggz-zwb", CARE, ("coordinator",), (PURPOSE_HUISELIJK_GEWELD,), "liaison", 30),
    DetailRuleSpec("gemeente-breda", CONTACT, ("coordinator", "liaison"),
                   (PURPOSE_HUISELIJK_GEWELD,)),
)  # fmt: skip


def detail_categories(node_id: str) -> tuple[str, ...]:
    """The categories a partner's source system supplies texts for: those it may share."""
    return tuple(r.category for r in DETAIL_RULES if r.provider == node_id)


def detail_rule(provider: str, category: str) -> DetailRuleSpec | None:
    return next((r for r in DETAIL_RULES if (r.provider, r.category) == (provider, category)), None)


class DemoError(VhnodeError):
    """The demo could not run: a node failed to start, the API answered an error, ..."""

    code = "demo_failed"


# --- the convenant ----------------------------------------------------------------------


def convenant_toml(partners: Sequence[PartnerSpec], now: datetime) -> str:
    """The convenant source (same shape as config/convenant.example.toml)."""
    valid_from = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    valid_until = (now + timedelta(days=2 * 365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = textwrap.dedent(f'''\
        id = "{CONVENANT_ID}"
        version = 1
        title = "Convenant Zorg- en Veiligheidshuis Zeeland-West-Brabant (demo)"
        legal_basis = """
        Taak van algemeen belang (artikel 6, eerste lid, onder e, AVG): het voorkomen en \\
        terugdringen van recidive van veelplegers en van huiselijk geweld door een \\
        afgestemde aanpak per persoon of gezin; artikel 20 Wet politiegegevens; artikel 39f \\
        Wet justitiële en strafvorderlijke gegevens. Uitgewisseld wordt alleen bekendheid \\
        binnen de reikwijdte van dit convenant; verdere gegevens alleen per casus, per doel \\
        en per categorie zoals de detailregels hieronder bepalen.\\
        """
        valid_from = {valid_from}
        valid_until = {valid_until}

        [[purposes]]
        id = "{PURPOSE_VEELPLEGERS}"
        description = "Voorbereiding casusoverleg veelplegers: welke partners kennen de persoon?"

        [[purposes]]
        id = "{PURPOSE_HUISELIJK_GEWELD}"
        description = "Voorbereiding casusoverleg huiselijk geweld: welke partners kennen het gezin of het adres?"

        [[purposes]]
        id = "{PURPOSE_JEUGD}"
        description = "Justitieel casusoverleg jeugd. Geen partij heeft hiervoor een vraagrecht."
        ''')  # noqa: E501 - TOML text
    for p in partners:
        roles = ['"provider"'] + (['"requester"'] if p.query_purposes else [])
        purposes = ", ".join(f'"{q}"' for q in p.query_purposes)
        themes = ", ".join(f'"{t}"' for t in p.scope_themes)
        out += textwrap.dedent(f"""
            [[parties]]
            node_id = "{p.node_id}"
            roles = [{", ".join(roles)}]
            query_purposes = [{purposes}]
            scope_themes = [{themes}]
            """)
    for category, description in CATEGORIES:
        out += f'\n[[categories]]\nid = "{category}"\ndescription = "{description}"\n'
    for r in DETAIL_RULES:
        out += textwrap.dedent(f"""
            [[detail_rules]]
            provider = "{r.provider}"
            category = "{r.category}"
            recipients = [{_strings(r.recipients)}]
            recipient_roles = [{_strings(r.recipient_roles)}]
            purposes = [{_strings(r.purposes)}]
            approval = "{r.approval}"
            max_retention_days = {r.max_retention_days}
            notify_hit = {"true" if r.notify_hit else "false"}
            """)
    return out


def _strings(values: Sequence[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)
