"""dd_audit: a switch described in one YAML file, made real on its broker
(users, permissions, exchanges, log routing) and its web server (nginx).

* description.py: the YAML (the only yaml import), ``load_switch``;
* plan.py: permissions, the wanted state and its differences (pure);
* rabbit.py: RabbitMQ's management HTTP API (declare, check, remove);
* nginx.py: the site configuration; command.py: ``main(argv)``.
"""
from .description import XPUBLIC, XREPORT, XREPORT_IN, XSARRA, Switch, load_switch

__all__ = ["XPUBLIC", "XREPORT", "XREPORT_IN", "XSARRA", "Switch", "load_switch"]
