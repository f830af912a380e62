"""The demo federation's parties and the convenant they sign (names, purposes, scopes)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from node.errors import VhnodeError
from node.synthetic import THEMES_BY_ORG_TYPE

CONVENANT_ID = "zwb-casusoverleg-demo"
PURPOSE_VEELPLEGERS = "casusoverleg-veelplegers"
PURPOSE_HUISELIJK_GEWELD = "casusoverleg-huiselijk-geweld"
PURPOSE_JEUGD = "casusoverleg-jeugd"  # in the convenant, but no party may ask for it
NO_QUERY_RIGHT = "no_query_right"

COORDINATOR_NODE = "vh-zwb"
COORDINATOR_USER = "coordinator-vh-zwb"
DOWN_PARTNER = "ggz-zwb"


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
        binnen de reikwijdte van dit convenant.\\
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
    return out
