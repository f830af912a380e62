"""``vhnode demo``: a whole Veiligheidshuis federation on this machine, checked end to end.

Seven nodes (the Veiligheidshuis office and six partners) are initialised in their own
homes, exchange peer cards, sign and install one convenant, import thousands of synthetic
registrations through the real import path, and run as separate ``python -m node serve``
processes on loopback. The coordinator then asks bekendheid through the Veiligheidshuis
node's HTTP API, and every per-partner, per-subject answer is compared with the ground
truth of the synthetic data: which person ids and addresses each partner registered
under a theme inside its convenant scope. That truth is computed from the generator's
records, never by the node's own matching code, so a matching bug shows as a ✗.

A second stage asks the police node for detail of one person it had a hit on: one
category it shares at once, one that waits for its liaison's approval, one the convenant
does not share for that purpose. The texts that arrive must be exactly the synthetic
texts registered there for that person, the denied and the pending one must show none
until (for the pending one) the liaison approved, and no text may appear in any log.

Afterwards every node's log is verified offline (``node.store.log.verify`` on each
home's database, against the key in the node's peer card). Processes are stopped with
SIGTERM (SIGKILL after a deadline) in a ``finally``, on success, error and Ctrl-C alike.

The output (table or ``--json``) is described in docs/demo.md.

The package, one job per module: ``partners`` (the parties and their convenant, with its
detail rules), ``texts`` (the synthetic detail texts), ``truth`` (ground truth and
agreement), ``scenario`` (synthetic data, the example queries and the detail case),
``federation`` (homes and node processes), ``details`` (the second stage), ``run`` (one
whole run and its report), ``render`` (text output) and ``command`` (the click command).
"""

from node.demo.command import demo
from node.demo.federation import serve_command
from node.demo.partners import (
    CONVENANT_ID,
    COORDINATOR_NODE,
    DOWN_PARTNER,
    PARTNERS,
    DemoError,
    PartnerSpec,
    convenant_toml,
)
from node.demo.run import run_demo
from node.demo.scenario import DetailCase, Scenario, build_scenario
from node.demo.truth import DemoQuery, GroundTruth, partner_agrees, result_agrees

__all__ = [
    "CONVENANT_ID",
    "COORDINATOR_NODE",
    "DOWN_PARTNER",
    "PARTNERS",
    "DemoError",
    "DemoQuery",
    "DetailCase",
    "GroundTruth",
    "PartnerSpec",
    "Scenario",
    "build_scenario",
    "convenant_toml",
    "demo",
    "partner_agrees",
    "result_agrees",
    "run_demo",
    "serve_command",
]
