"""dd_audit without a broker: the switch description, the permission regexes,
the plan and its differences, YAML editing, the nginx site, the command line."""
from __future__ import annotations

import base64
import hashlib
import logging
import textwrap
from pathlib import Path

import pytest
import yaml

from sarra.config import Credentials
from sarra.errors import ConfigError
from sarra.switch import XREPORT_IN, XSARRA, load_switch
from sarra.switch import configs
from sarra.switch.command import main
from sarra.switch.description import (add_user_to_file, check_user, default_management_url,
                                      remove_user_from_file, switch_from_data)
from sarra.switch.nginx import site_config
from sarra.switch.plan import (POST_KEY, REPORT_KEY, Binding, BrokerState, Permissions,
                               allowed, build_plan, differences, owned_by,
                               password_matches, permissions)

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "switch.yaml"

GOOD = """\
# the lab switch
cluster: lab1
broker: amqp://admin@localhost/    # the administrator
feeder: amqp://feeder@localhost/
data_dir: /var/lib/sarra/data
base_url: http://localhost:8090/
users:   # who is who
  alice: source     # posts data
  carol: subscriber
# end of users
links: []
"""


def write(tmp_path: Path, text: str, name: str = "switch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- description

def test_example_loads():
    switch = load_switch(str(EXAMPLE))
    assert switch.cluster == "lab1"
    assert switch.users == {"alice": "source", "carol": "subscriber", "lab2": "link"}
    assert switch.management_url == "http://localhost:15672/api"
    assert switch.accounts() == {"admin": "admin", "feeder": "feeder",
                                 "alice": "source", "carol": "subscriber", "lab2": "link"}
    assert [(k.cluster, k.broker) for k in switch.links] == [
        ("lab0", "amqp://lab1@switch0.example.com/")]
    assert switch.path == str(EXAMPLE)


def test_good_description(tmp_path):
    switch = load_switch(str(write(tmp_path, GOOD)))
    assert (switch.broker, switch.feeder) == ("amqp://admin@localhost/",
                                              "amqp://feeder@localhost/")
    assert switch.data_dir == "/var/lib/sarra/data"
    assert switch.base_url == "http://localhost:8090/"
    assert switch.names("source", "subscriber") == ["alice", "carol"]
    assert switch.account_url("alice") == "amqp://alice@localhost:5672/"
    assert XSARRA == "xsarra" and XREPORT_IN == "xreport_in"


def test_management_url(tmp_path):
    assert default_management_url("amqp://a@broker.example.com/") == \
        "http://broker.example.com:15672/api"
    assert default_management_url("amqps://a@h:5671/") == "https://h:15671/api"
    switch = load_switch(str(write(tmp_path, GOOD + "management_url: http://h:1234/api/\n")))
    assert switch.management_url == "http://h:1234/api"


@pytest.mark.parametrize("text, where", [
    ("cluster: lab1\nbroker: a: b\n", ":2: not valid YAML: mapping values"),
    ("- just\n- a list\n", "a mapping of keys"),
])
def test_bad_yaml_names_the_file(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_switch(str(path))
    assert str(path) in str(err.value) and where in str(err.value)


def test_bad_yaml_line_number(tmp_path):
    path = write(tmp_path, GOOD.replace("links: []", "links: [\n  :"))
    with pytest.raises(ConfigError) as err:
        load_switch(str(path))
    assert err.value.file == str(path) and err.value.line is not None


@pytest.mark.parametrize("edit, option", [
    (("links: []", "links: []\nclusters: x"), "clusters"),
    (("carol: subscriber", "carol: reader"), "users.carol"),
    (("carol: subscriber", "al_ice: source"), "users.al_ice"),
    (("carol: subscriber", "al.ice: source"), "users.al.ice"),
    (("carol: subscriber", "1234: source"), "users"),
    (("cluster: lab1\n", ""), "cluster"),
    (("amqp://admin@localhost/", "amqp://admin:secret@localhost/"), "broker"),
    (("amqp://feeder@localhost/", "amqp://localhost/"), "feeder"),
    (("/var/lib/sarra/data", "data"), "data_dir"),
    (("http://localhost:8090/", "ftp://localhost/"), "base_url"),
    (("links: []", "links: {}"), "links"),
    (("links: []", "links: []\ninstances: 0"), "instances"),
    (("/var/lib/sarra/data", '"/var/lib/sarra/data\\nexpire 1s"'), "data_dir"),
    (("links: []", "links: []\ninstances: two"), "instances"),
    (("users:   # who is who", "users: [alice]\nx:"), None),
    (("alice: source", "admin: source"), "users.admin"),
    (("links: []", "links: []\nmqtt: sometimes"), "mqtt"),
])
def test_bad_description_names_file_and_key(tmp_path, edit, option):
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError) as err:
        load_switch(str(path))
    assert err.value.file == str(path)
    if option:
        assert err.value.option == option, str(err.value)
        assert f"'{option}'" in str(err.value)


def test_passwords_from_credentials(tmp_path):
    switch = load_switch(str(write(tmp_path, GOOD)))
    creds = Credentials.from_text("amqp://admin:adm@localhost/\n"
                                  "amqp://feeder:fd@localhost:5672/\n"
                                  "amqp://alice:p%40ss@localhost/\n"
                                  "amqp://carol:cc@localhost/\n")
    assert switch.passwords(credentials=creds) == {
        "admin": "adm", "feeder": "fd", "alice": "p@ss", "carol": "cc"}
    assert switch.admin_login(creds) == ("admin", "adm")


def test_missing_password_names_the_user(tmp_path):
    switch = load_switch(str(write(tmp_path, GOOD)))
    creds = Credentials.from_text("amqp://admin:adm@localhost/\n"
                                  "amqp://feeder:fd@localhost/\n"
                                  "amqp://alice:pw@otherhost/\n")
    with pytest.raises(ConfigError) as err:
        switch.passwords(credentials=creds)
    message = str(err.value)
    assert "users alice, carol" in message
    assert "amqp://carol:PASSWORD@localhost:5672/" in message
    assert switch.passwords(["admin"], creds) == {"admin": "adm"}
    with pytest.raises(ConfigError, match="administrator"):
        switch.admin_login(Credentials.from_text(""))


# --------------------------------------------------------------------------- permissions

def can(role: str, user: str, kind: str, name: str) -> bool:
    return allowed(getattr(permissions(role, user), kind), name)


@pytest.mark.parametrize("kind, name, expected", [
    ("configure", "q_alice.subscribe.x.1.2", True),
    ("configure", "xs_alice", False),
    ("configure", "xpublic", False),
    ("write", "q_alice.x", True),          # binding her own queue
    ("write", "xs_alice", True),
    ("write", "xs_alice_extra", True),
    ("write", "xs_bob", False),
    ("write", "xpublic", False),
    ("write", "xr_alice", False),
    ("write", XSARRA, False),
    ("write", XREPORT_IN, False),
    ("write", "xreport", False),
    ("read", "q_alice.x", True),
    ("read", "xpublic", True),
    ("read", "xr_alice", True),
    ("read", "xs_alice", True),
    ("read", "xr_bob", False),
    ("read", "xpublicity", False),
    ("read", XSARRA, False),
    ("read", "q_bob.x", False),
])
def test_source_permissions(kind, name, expected):
    assert can("source", "alice", kind, name) is expected


@pytest.mark.parametrize("kind, name, expected", [
    ("configure", "q_carol.x", True),
    ("write", "q_carol.x", True),
    ("write", "xs_carol", True),
    ("write", "xs_carol_extra", False),
    ("write", "xpublic", False),
    ("write", "xs_alice", False),
    ("read", "xpublic", True),
    ("read", "xr_carol", True),
    ("read", "xs_carol", True),
    ("read", "xr_carol_x", False),
    ("read", "xr_alice", False),
])
def test_subscriber_permissions(kind, name, expected):
    assert can("subscriber", "carol", kind, name) is expected


@pytest.mark.parametrize("role", ["source", "subscriber"])
@pytest.mark.parametrize("kind", ["configure", "write", "read"])
@pytest.mark.parametrize("name", ["xs_alice", "xr_alice", "q_alice.x", "q_alice",
                                  "xs_alice_x", "xs_al-x", "q_al-x.y", "xs_alx"])
def test_a_prefix_of_a_name_gains_nothing(role, kind, name):
    """User 'al' gets nothing on alice's (or al-x's) exchanges and queues."""
    assert not can(role, "al", kind, name)


@pytest.mark.parametrize("role", ["source", "subscriber"])
def test_longer_name_gains_nothing_on_the_shorter(role):
    for kind in ("configure", "write", "read"):
        assert not can(role, "alice", kind, "xs_al")
        assert not can(role, "alice", kind, "q_al.x")


def test_feeder_and_admin_get_everything():
    for role in ("feeder", "admin"):
        assert permissions(role, "x") == Permissions(".*", ".*", ".*")
    assert permissions("source", "alice").write == r"^q_alice\..*|^xs_alice(_.*)?$"
    assert permissions("subscriber", "carol").read == \
        r"^q_carol\..*|^x[rs]_carol$|^xpublic(_stream)?$|^xprivate_carol$"
    with pytest.raises(ValueError):
        permissions("reader", "x")


def test_owned_by():
    assert owned_by("xs_alice", "alice") and owned_by("xr_alice_2", "alice")
    assert not owned_by("xs_alicex", "alice") and not owned_by("xs_alice", "al")
    assert owned_by("xs_alice_a\nb", "alice")             # a suffix is a suffix
    assert not owned_by("xs_alice\n", "alice") and not owned_by("xr_alice ", "alice")


# --------------------------------------------------------------------------- passwords

def rabbit_hash(password: str, salt: bytes = b"\x01\x02\x03\x04", h=hashlib.sha256) -> str:
    return base64.b64encode(salt + h(salt + password.encode()).digest()).decode()


def test_password_hash_comparison():
    # guest/guest as a RabbitMQ 3.10 broker stores it
    real = "DB04QsVtNoUbsjzlkmUMIsYp1Qvxp95c+rEUbk8zmGz2+k0K"
    assert password_matches(real, "rabbit_password_hashing_sha256", "guest")
    assert not password_matches(real, "rabbit_password_hashing_sha256", "guesT")
    sha512 = rabbit_hash("pw", h=hashlib.sha512)
    assert password_matches(sha512, "rabbit_password_hashing_sha512", "pw")
    assert not password_matches("", "rabbit_password_hashing_sha256", "pw")
    assert not password_matches("not base64!", "rabbit_password_hashing_sha256", "pw")
    assert not password_matches(rabbit_hash("pw"), "unknown_algorithm", "pw")


# --------------------------------------------------------------------------- plan

PASSWORDS = {"admin": "a", "feeder": "f", "alice": "al", "carol": "ca"}


def complete_state(plan) -> BrokerState:
    users = {n: {"tags": list(a.tags), "password_hash": rabbit_hash(a.password),
                 "hashing_algorithm": "rabbit_password_hashing_sha256"}
             for n, a in plan.accounts.items()}
    exchanges = {n: {"type": "topic", "durable": True, "auto_delete": False,
                     "internal": False} for n in plan.exchanges}
    return BrokerState(users, {n: a.perms for n, a in plan.accounts.items()},
                       exchanges, set(plan.bindings))


def test_plan(tmp_path):
    plan = build_plan(load_switch(str(write(tmp_path, GOOD))), PASSWORDS)
    assert plan.accounts["admin"].tags == ("administrator",)
    assert plan.accounts["feeder"].tags == () and plan.accounts["alice"].tags == ()
    assert set(plan.exchanges) == {"xpublic", "xreport", XSARRA, XREPORT_IN, "xprivate",
                                   "xs_alice", "xr_alice", "xprivate_alice", "xs_carol",
                                   "xr_carol", "xprivate_carol"}
    assert set(plan.bindings) == {Binding("xs_alice", XSARRA, POST_KEY),
                                  Binding("xs_alice", XREPORT_IN, REPORT_KEY),
                                  Binding("xs_carol", XREPORT_IN, REPORT_KEY)}


def test_differences_from_an_empty_broker(tmp_path):
    plan = build_plan(load_switch(str(write(tmp_path, GOOD))), PASSWORDS)
    diffs = differences(plan, BrokerState({}, {}, {}, set()))
    problems = [d.problem for d in diffs]
    assert "missing user alice (source)" in problems
    assert "user carol has no permissions on vhost /" in problems
    assert "missing exchange xsarra" in problems
    assert "missing binding xs_alice -> xsarra (v02.post.#)" in problems
    assert all(d.action for d in diffs)
    assert "missing exchange xprivate_carol" in problems
    assert len(diffs) == 4 * 2 + 11 + 3


def test_no_difference_when_complete(tmp_path):
    plan = build_plan(load_switch(str(write(tmp_path, GOOD))), PASSWORDS)
    assert differences(plan, complete_state(plan)) == []


def test_mqtt_on_adds_the_plugins_queues_amq_topic_and_topic_permissions(tmp_path):
    switch = load_switch(str(write(tmp_path, GOOD + "mqtt: on\n")))
    assert switch.mqtt and load_switch(str(write(tmp_path, GOOD))).mqtt is False
    plan = build_plan(switch, PASSWORDS)
    alice, carol = plan.accounts["alice"], plan.accounts["carol"]
    for perms in (alice.perms, carol.perms):
        assert allowed(perms.configure, "mqtt-subscription-q_alice.x.yqos1") == \
            (perms is alice.perms)
        assert allowed(perms.write, "amq.topic") and allowed(perms.read, "amq.topic")
        assert not allowed(perms.configure, "amq.topic")
    assert alice.perms.write.startswith(permissions("source", "alice").write)
    assert plan.accounts["admin"].topics is None and plan.accounts["feeder"].topics is None
    # by routing key on amq.topic: MQTT's <exchange>/<words> with '.'
    assert allowed(alice.topics.write, "xs_alice.v03.post.obs")
    assert allowed(alice.topics.write, "xs_alice_model.v03.post.obs")
    assert not allowed(alice.topics.write, "xs_alicex.v03.post")
    assert not allowed(alice.topics.write, "xpublic.v03.post")
    assert allowed(carol.topics.read, "xpublic.v03.post.#")
    assert allowed(carol.topics.read, "xr_carol.v02.report.#")
    assert not allowed(carol.topics.read, "xs_alice.v03.#")
    assert not allowed(carol.topics.write, "xs_carol_x.v03.post")

    state = complete_state(plan)
    problems = [d.problem for d in differences(plan, state)]
    assert "user alice has no topic permissions on amq.topic" in problems
    plugins = [d for d in differences(plan, state) if d.conflict]
    assert len(plugins) == 1 and plugins[0].action is None
    assert "run 'rabbitmq-plugins enable rabbitmq_mqtt rabbitmq_web_mqtt'" in plugins[0].problem
    state.topic_permissions = {n: a.topics for n, a in plan.accounts.items() if a.topics}
    state.protocols = {"amqp", "http", "mqtt", "http/web-mqtt"}
    assert differences(plan, state) == []
    state.protocols.discard("http/web-mqtt")
    assert "no listener of rabbitmq_web_mqtt " in differences(plan, state)[0].problem


def test_differences_listed(tmp_path):
    plan = build_plan(load_switch(str(write(tmp_path, GOOD))), PASSWORDS)
    state = complete_state(plan)
    state.users["alice"]["tags"] = ["management"]
    state.users["carol"]["password_hash"] = rabbit_hash("other")
    del state.permissions["feeder"]
    state.permissions["mallory"] = permissions("source", "mallory")
    state.users["mallory"] = {"tags": []}
    state.users["guest2"] = {"tags": []}            # not a sarra user: not listed
    state.exchanges["xreport"]["type"] = "fanout"
    state.bindings.discard(Binding("xs_carol", XREPORT_IN, REPORT_KEY))
    state.bindings.add(Binding("xs_carol", XSARRA, POST_KEY))      # carol is no source
    state.bindings.add(Binding("xs_mallory", XSARRA, POST_KEY))
    by_problem = {d.problem: d for d in differences(plan, state)}
    assert list(by_problem) == [
        "user alice: tags [management] instead of []",
        "user carol: password differs from credentials.conf",
        "user feeder has no permissions on vhost /",
        "extra user mallory (not in the description)",
        "exchange xreport is fanout durable=True auto_delete=False internal=False; "
        "expected a durable topic exchange (delete it, then declare)",
        "missing binding xs_carol -> xreport_in (v02.report.#)",
        "extra binding xs_carol -> xsarra (v02.post.#)",
        "extra binding xs_mallory -> xsarra (v02.post.#)",
    ]
    assert by_problem["extra binding xs_carol -> xsarra (v02.post.#)"].action[0] == "unbind"
    assert by_problem["extra binding xs_mallory -> xsarra (v02.post.#)"].action is None
    assert by_problem["extra user mallory (not in the description)"].action is None
    assert [d.conflict for d in by_problem.values()].count(True) == 1


def test_wrong_permissions_are_spelled_out(tmp_path):
    plan = build_plan(load_switch(str(write(tmp_path, GOOD))), PASSWORDS)
    state = complete_state(plan)
    state.permissions["alice"] = Permissions(".*", permissions("source", "alice").write, "")
    (diff,) = differences(plan, state)
    assert diff.problem == (r"user alice: configure '.*' instead of '^q_alice\..*'; "
                            r"read '' instead of '^q_alice\..*|^x[rs]_alice(_.*)?$|^xpublic(_stream)?$"
                            r"|^xprivate_alice$'")
    assert diff.action[0] == "put_permissions"


# --------------------------------------------------------------------------- editing

def test_add_and_remove_user_keep_comments(tmp_path):
    path = write(tmp_path, GOOD)
    switch = add_user_to_file(str(path), "bob", "source")
    assert switch.users == {"alice": "source", "carol": "subscriber", "bob": "source"}
    text = path.read_text()
    assert "  bob: source\n# end of users" in text
    assert text.replace("  bob: source\n", "") == GOOD
    add_user_to_file(str(path), "bob", "subscriber")
    assert "  bob: subscriber\n" in path.read_text()
    remove_user_from_file(str(path), "bob")
    assert path.read_text() == GOOD
    remove_user_from_file(str(path), "alice")
    remove_user_from_file(str(path), "carol")
    assert load_switch(str(path)).users == {}
    assert "# who is who" in path.read_text() and "# posts data" not in path.read_text()
    add_user_to_file(str(path), "no", "subscriber")     # YAML would read no as False
    assert load_switch(str(path)).users == {"no": "subscriber"}
    assert '  "no": subscriber\n' in path.read_text()


def test_add_user_to_flow_style_rewrites(tmp_path, caplog):
    path = write(tmp_path, GOOD.replace("users:   # who is who\n  alice: source     # posts data\n"
                                        "  carol: subscriber\n",
                                        "users: {alice: source, carol: subscriber}\n"))
    with caplog.at_level(logging.WARNING):
        add_user_to_file(str(path), "bob", "source")
    assert "comments are lost" in caplog.text
    assert load_switch(str(path)).users == {"alice": "source", "carol": "subscriber",
                                            "bob": "source"}


def test_add_user_refuses_bad_input(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="unknown role"):
        add_user_to_file(str(path), "bob", "owner")
    with pytest.raises(ConfigError, match="bad user name"):
        add_user_to_file(str(path), "bob_2", "source")
    with pytest.raises(ConfigError, match="feeder account"):
        add_user_to_file(str(path), "feeder", "source")
    assert path.read_text() == GOOD


# --------------------------------------------------------------------------- nginx

def test_nginx_site(tmp_path):
    switch = load_switch(str(write(tmp_path, GOOD)))
    text = site_config(switch)
    assert "server {\n    listen 8090;\n    server_name localhost;\n" in text
    assert "    location / {\n        root /var/lib/sarra/data;\n        autoindex off;\n" in text
    # no link below data_dir is followed, whoever made it (not if_not_owner)
    assert "        disable_symlinks on from=/var/lib/sarra/data;\n    }\n" in text
    assert "http {" not in text
    # the private tree (doc/switch.md): basic auth, then the readers' map
    assert ("    location /_private/ {\n        alias /var/lib/sarra/data.private/;\n"
            '        auth_basic "sarra restricted files";\n'
            "        auth_basic_user_file /var/lib/sarra/data.htpasswd;\n"
            "        if ($sarra_reader_lab1 = 0) { return 403; }\n") in text
    assert "        disable_symlinks on from=/var/lib/sarra/data.private;\n    }\n}\n" in text
    assert text.startswith("# who may read what below http://localhost:8090/_private/")
    assert ('    "~^([A-Za-z0-9-]+):/_private/([^/]*,)?\\1(@lab1)?(,[^/]*)?/" 1;\n}\n'
            in text)
    assert '"~^:" 1;' in text and "# the links" not in text    # no link in GOOD


def test_nginx_site_quotes_data_dir_and_refuses_a_dollar(tmp_path):
    spaced = load_switch(str(write(tmp_path, GOOD.replace("/var/lib/sarra/data",
                                                          "/srv/my data"))))
    assert 'disable_symlinks on "from=/srv/my data";' in site_config(spaced)
    dollar = load_switch(str(write(tmp_path, GOOD.replace("/var/lib/sarra/data",
                                                          "/srv/$data"))))
    with pytest.raises(ConfigError, match="variable") as err:
        site_config(dollar)
    assert err.value.option == "data_dir"


def test_nginx_site_at_a_path_standalone(tmp_path):
    switch = load_switch(str(write(tmp_path, GOOD.replace("http://localhost:8090/",
                                                          "http://127.0.0.1:8090/pub"))))
    text = site_config(switch, standalone=True)
    assert "        listen 127.0.0.1:8090;\n" in text and "server_name" not in text
    assert "location /pub/ {\n            alias /var/lib/sarra/data/;" in text
    assert "            disable_symlinks on from=/var/lib/sarra/data;\n" in text
    assert text.count("{") == text.count("}") and "events {" in text and "http {" in text
    assert "listen 127.0.0.1:9999;" in site_config(switch, listen="127.0.0.1:9999")


def test_nginx_https_needs_certificates(tmp_path):
    switch = load_switch(str(write(tmp_path, GOOD.replace("http://localhost:8090/",
                                                          "https://data.example.com/"))))
    with pytest.raises(ConfigError, match="ssl_certificate"):
        site_config(switch)
    text = site_config(switch, ssl_certificate="/c.pem", ssl_certificate_key="/k.pem")
    assert "listen 443 ssl;" in text and "ssl_certificate_key /k.pem;" in text
    assert "    ssl_protocols TLSv1.2 TLSv1.3;\n" in text
    plain = load_switch(str(write(tmp_path, GOOD)))
    with pytest.raises(ConfigError, match="for an https base_url"):
        site_config(plain, ssl_certificate="/c.pem", ssl_certificate_key="/k.pem")


# --------------------------------------------------------------------------- command line

def test_main_usage_errors(tmp_path, capsys):
    path = str(write(tmp_path, GOOD))
    assert main([]) == 2
    assert main(["frobnicate", path]) == 2
    assert main(["add-user", path, "bob"]) == 2
    assert "NAME ROLE" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "missing.yaml")]) == 2
    assert "no such switch description" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_main_bad_description_exit_2(tmp_path, capsys):
    path = str(write(tmp_path, GOOD.replace("carol: subscriber", "carol: reader")))
    assert main(["declare", path]) == 2
    err = capsys.readouterr().err
    assert path in err and "users.carol" in err and "reader" in err


def test_main_missing_password_exit_2(tmp_path, monkeypatch, capsys):
    """Passwords are looked up before any broker is contacted."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "credentials.conf").write_text("amqp://admin:a@localhost/\n"
                                           "amqp://feeder:f@localhost/\n"
                                           "amqp://alice:al@localhost/\n")
    (conf / "credentials.conf").chmod(0o600)
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(conf))
    path = str(write(tmp_path, GOOD))
    for argv in (["declare", path], ["check", path], ["add-user", path, "bob", "source"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "no password for user" in err and "carol" in err and "alice" not in err
    assert "bob" not in Path(path).read_text()


def test_main_nginx(tmp_path, capsys):
    path = str(write(tmp_path, GOOD))
    assert main(["nginx", path]) == 0
    assert capsys.readouterr().out == site_config(load_switch(path))
    out = tmp_path / "site.conf"
    assert main(["nginx", "--standalone", path, "-o", str(out), "--listen", "127.0.0.1:1"]) == 0
    assert "listen 127.0.0.1:1;" in out.read_text() and "http {" in out.read_text()


# --------------------------------------------------------------------------- links

LINKED = GOOD.replace("links: []", """\
links:
  - cluster: lab0
    broker: amqp://lab1@switch0.example.com/
  - cluster: lab2
    broker: amqp://lab1@switch2.example.com:5673/
    to_clusters: [lab1, lab3]
    from_clusters: lab2, lab9
""").replace("carol: subscriber", "carol: subscriber\n  lab0: link")


def test_links_with_their_defaults(tmp_path):
    switch = load_switch(str(write(tmp_path, LINKED)))
    zero, two = switch.links
    assert (zero.cluster, zero.broker, zero.exchange, zero.user) == (
        "lab0", "amqp://lab1@switch0.example.com/", "xpublic", "lab1")
    assert zero.to_clusters == ("lab1",) and zero.from_clusters == ("lab0",)
    assert two.to_clusters == ("lab1", "lab3") and two.from_clusters == ("lab2", "lab9")
    assert switch.accounts()["lab0"] == "link"
    again = switch_from_data(switch.as_data(), "again")       # as_data reads back
    assert again.links == switch.links


@pytest.mark.parametrize("entry, option", [
    ("- lab0", "links[0]"),
    ("- {cluster: lab0}", "links[0].broker"),
    ("- {broker: 'amqp://u@h/'}", "links[0].cluster"),
    ("- {cluster: lab0, broker: 'amqp://h/'}", "links[0].broker"),
    ("- {cluster: lab0, broker: 'amqp://u:pw@h/'}", "links[0].broker"),
    ("- {cluster: lab0, broker: 'http://u@h/'}", "links[0].broker"),
    ("- {cluster: 'a,b', broker: 'amqp://u@h/'}", "links[0].cluster"),
    ("- {cluster: lab.east, broker: 'amqp://u@h/'}", "links[0].cluster"),
    ("- {cluster: lab0, broker: 'amqp://u@h/', exchange: \"xpublic\\npost_broker x\"}",
     "links[0].exchange"),
    ("- {cluster: lab1, broker: 'amqp://u@h/'}", "links[0].cluster"),
    ("- {cluster: lab0, broker: 'amqp://u@h/', to: x}", "links[0].to"),
    ("- {cluster: lab0, broker: 'amqp://u@h/', to_clusters: []}", "links[0].to_clusters"),
    ("- {cluster: lab0, broker: 'amqp://u@h/', from_clusters: ['a b']}",
     "links[0].from_clusters"),
    ("- {cluster: ALL, broker: 'amqp://u@h/'}", "links[0].cluster"),     # means every one
    ("- {cluster: lab0, broker: 'amqp://u@h/', to_clusters: [ALL]}", "links[0].to_clusters"),
    ("- {cluster: lab0, broker: 'amqp://u@h/'}\n  - {cluster: lab0, broker: 'amqp://v@h/'}",
     "links[1].cluster"),
])
def test_bad_links_name_the_entry_and_key(tmp_path, entry, option):
    path = write(tmp_path, GOOD.replace("links: []", f"links:\n  {entry}"))
    with pytest.raises(ConfigError) as err:
        load_switch(str(path))
    assert err.value.option == option, str(err.value)


@pytest.mark.parametrize("kind, name, expected", [
    ("configure", "q_lab2.sara.from-lab1.x", True),
    ("configure", "xpublic", False),
    ("write", "q_lab2.x", True),
    ("write", XREPORT_IN, True),       # log messages about this switch's data, back home
    ("write", "xpublic", False),
    ("write", XSARRA, False),
    ("write", "xreport", False),
    ("write", "xs_alice", False),
    ("write", "xr_alice", False),
    ("read", "xpublic", True),         # the posts it takes on
    ("read", "q_lab2.x", True),
    ("read", "xr_alice", False),       # nobody's log messages
    ("read", "xreport", False),
    ("read", XREPORT_IN, False),
    ("read", XSARRA, False),
    ("read", "q_alice.x", False),
])
def test_link_permissions(kind, name, expected):
    assert can("link", "lab2", kind, name) is expected


def test_a_link_has_only_its_private_exchange(tmp_path):
    """A link reads xpublic and, through xprivate_<link> bound to xprivate
    with #, every restricted post, which it carries onward."""
    switch = load_switch(str(write(tmp_path, LINKED)))
    plan = build_plan(switch, {**PASSWORDS, "lab0": "z"})
    assert plan.accounts["lab0"].perms == permissions("link", "lab0")
    assert [x for x in plan.exchanges if "lab0" in x] == ["xprivate_lab0"]
    assert not [b for b in plan.bindings if "lab0" in b.source]
    assert [b for b in plan.bindings if "lab0" in b.destination] == [
        Binding("xprivate", "xprivate_lab0", "#")]
    assert allowed(plan.accounts["lab0"].perms.read, "xprivate_lab0")
    assert not allowed(plan.accounts["lab0"].perms.read, "xprivate")
    text = site_config(switch)
    assert '    "~^(lab0):" 1;  # the links carry restricted files\n' in text


# --------------------------------------------------------------------------- vhost

@pytest.mark.parametrize("broker, vhost", [
    ("amqp://admin@localhost/", "/"), ("amqp://admin@localhost", "/"),
    ("amqp://admin@localhost/lab2", "lab2"), ("amqp://admin@localhost/%2f", "/"),
    ("amqp://admin@localhost:5673/a%2fb", "a/b"),
])
def test_vhost_is_the_path_of_the_broker_url(tmp_path, broker, vhost):
    feeder = broker.replace("admin@", "feeder@")
    text = GOOD.replace("amqp://admin@localhost/", broker).replace(
        "amqp://feeder@localhost/", feeder)
    assert load_switch(str(write(tmp_path, text))).vhost == vhost


@pytest.mark.parametrize("feeder", ["amqp://feeder@localhost/other",
                                    "amqp://feeder@otherhost/lab2",
                                    "amqp://feeder@localhost:5673/lab2"])
def test_feeder_must_be_on_the_same_broker_and_vhost(tmp_path, feeder):
    text = GOOD.replace("amqp://admin@localhost/", "amqp://admin@localhost/lab2").replace(
        "amqp://feeder@localhost/", feeder)
    with pytest.raises(ConfigError) as err:
        load_switch(str(write(tmp_path, text)))
    assert err.value.option == "feeder"


def test_a_missing_vhost_is_created_first(tmp_path):
    text = GOOD.replace("@localhost/", "@localhost/lab2")
    switch = load_switch(str(write(tmp_path, text)))
    diffs = differences(build_plan(switch, PASSWORDS), BrokerState({}, {}, {}, set(), False),
                        switch.vhost)
    assert diffs[0].problem == "missing vhost lab2"
    assert diffs[0].action == ("put_vhost", "lab2")
    assert "user alice has no permissions on vhost lab2" in [d.problem for d in diffs]


# --------------------------------------------------------------------------- configs

def _conf(text: str) -> dict[str, str]:
    rows = [ln.split(None, 1) for ln in text.splitlines() if ln and not ln.startswith("#")]
    return {k: v for k, v in rows}


def test_configs_of_the_switch_and_its_links(tmp_path):
    from sarra.config.loader import load_config
    from sarra.components import PRESETS
    switch = load_switch(str(write(tmp_path, LINKED)))
    files = configs.component_configs(switch)
    assert sorted(files) == ["sara/from-lab0.conf", "sara/from-lab2.conf", "sara/switch.conf",
                             "shovel/logs-to-lab0.conf", "shovel/logs-to-lab2.conf",
                             "shovel/logs.conf"]
    sara = _conf(files["sara/switch.conf"])
    assert sara["broker"] == "amqp://feeder@localhost/" and sara["exchange"] == "xsarra"
    assert sara["source_from_exchange"] == "on" and sara["cluster"] == "lab1"
    assert sara["directory"] == "/var/lib/sarra/data/${SOURCE}"
    assert sara["post_base_url"] == "http://localhost:8090/"
    assert sara["instances"] == "1"
    assert _conf(configs.switch_sara(switch_from_data(
        {**switch.as_data(), "instances": 3})))["instances"] == "3"
    router = _conf(files["shovel/logs.conf"])
    assert (router["post_exchange"], router["cluster"]) == ("xreport,xr_${SOURCE}", "lab1")
    take = _conf(files["sara/from-lab2.conf"])
    assert take["broker"] == "amqp://lab1@switch2.example.com:5673/"
    assert take["msg_to_clusters"] == "lab1,lab3" and take["cluster"] == "lab1"
    assert take["nodupe_ttl"] == "10m"         # what came round again stops here
    assert take["directory"] == "/var/lib/sarra/data" and "source_from_exchange" not in take
    back = _conf(files["shovel/logs-to-lab2.conf"])
    assert (back["exchange"], back["msg_to_clusters"], back["post_broker"],
            back["post_exchange"]) == ("xreport", "lab2,lab9",
                                       "amqp://lab1@switch2.example.com:5673/", "xreport_in")
    cdir = tmp_path / "cfg"
    for rel, text in files.items():      # every file is a valid configuration of its tool
        path = cdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        tool = rel.split("/")[0]
        load_config(tool, str(path), [], PRESETS.get(tool))


def test_configs_written_once_hand_edits_kept(tmp_path):
    switch = load_switch(str(write(tmp_path, LINKED)))
    creds = tmp_path / "credentials.conf"
    creds.write_text("amqp://feeder:f@localhost/\n")
    cdir = tmp_path / "cfg"
    first = configs.write_configs(switch, str(cdir), credentials=Credentials(str(creds)))
    assert len(first.done) == 6
    assert [n for n in first.notes if "no password" in n] == [
        "no password for amqp://lab1@switch0.example.com/ in "
        f"{creds}: sara/from-lab0, shovel/logs-to-lab0 cannot log in",
        "no password for amqp://lab1@switch2.example.com:5673/ in "
        f"{creds}: sara/from-lab2, shovel/logs-to-lab2 cannot log in"]
    again = configs.write_configs(switch, str(cdir), credentials=Credentials(str(creds)))
    assert again.done == []
    mine = cdir / "sara" / "switch.conf"
    mine.write_text("broker amqp://feeder@localhost/\nexchange xsarra\n")   # taken over
    (cdir / "sara" / "from-lab2.conf").unlink()
    only_two = switch_from_data({**switch.as_data(), "links": switch.as_data()["links"][:1]},
                                switch.path)
    third = configs.write_configs(only_two, str(cdir), credentials=Credentials(str(creds)))
    assert third.done == []
    assert f"kept {mine}: not written by dd_audit (--force replaces it)" in third.notes
    assert mine.read_text().startswith("broker")
    stale = [n for n in third.notes if "no such link" in n]
    assert stale == [f"{cdir}/shovel/logs-to-lab2.conf: no such link in the description any "
                     "more: `sarra stop shovel/logs-to-lab2`, then remove it"]
    forced = configs.write_configs(only_two, str(cdir), force=True,
                                   credentials=Credentials(str(creds)))
    assert forced.done == [f"wrote {mine}"]
    assert mine.read_text().startswith(configs.MARK)


# --------------------------------------------------------------------------- whole names

# Each name is checked whole: "alice\n" passed a '^...$' check ('$' matches
# before a final newline) and became a broker user of its own, with alice's
# password. Look-alikes of other scripts are not ASCII letters.
NOT_NAMES = ["alice\n", "alice\r", "alice ", " alice", "alice\t", "al\x00ice", "alice\x00",
             "alice\u200b",             # zero-width space
             "\u0430lice",              # Cyrillic a
             "\uff41lice",              # fullwidth a
             "\u0661\u0662",            # Arabic-Indic digits (\\d would take them)
             "\u212alab",               # Kelvin sign, a K under IGNORECASE
             "alice\u00e9", ""]


def _described(**changes) -> dict:
    data = {"cluster": "lab1", "broker": "amqp://admin@localhost/",
            "feeder": "amqp://feeder@localhost/", "data_dir": "/var/lib/sarra/data",
            "base_url": "http://localhost:8090/", "users": {"carol": "subscriber"},
            "links": []}
    data.update(changes)
    return data


def _load(tmp_path, data: dict):
    path = tmp_path / "switch.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=False), encoding="utf-8")
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == data    # as meant
    return load_switch(str(path))


@pytest.mark.parametrize("name", NOT_NAMES)
def test_user_names_are_checked_whole(tmp_path, name):
    with pytest.raises(ConfigError, match="bad user name") as err:
        _load(tmp_path, _described(users={name: "source", "carol": "subscriber"}))
    assert ascii(name) in str(err.value)       # shown with its escapes, on one line
    assert "\n" not in str(err.value) and "\x00" not in str(err.value)
    with pytest.raises(ConfigError, match="bad user name"):
        check_user(name, "source")


@pytest.mark.parametrize("name", NOT_NAMES)
def test_cluster_names_are_checked_whole(tmp_path, name):
    with pytest.raises(ConfigError, match="bad cluster name") as err:
        _load(tmp_path, _described(cluster=name))
    assert err.value.option == "cluster"
    link = {"cluster": name, "broker": "amqp://lab1@switch0.example.com/"}
    with pytest.raises(ConfigError, match="bad cluster name") as err:
        _load(tmp_path, _described(links=[link]))
    assert err.value.option == "links[0].cluster"
    for key in ("to_clusters", "from_clusters"):
        with pytest.raises(ConfigError, match="bad cluster name") as err:
            _load(tmp_path, _described(links=[{"cluster": "lab0", "broker": link["broker"],
                                               key: ["lab1", name]}]))
        assert err.value.option == f"links[0].{key}"


@pytest.mark.parametrize("name", ["xpublic\n", "xpublic ", "x\x00", "xp\u0443blic", ""])
def test_link_exchanges_are_checked_whole(tmp_path, name):
    link = {"cluster": "lab0", "broker": "amqp://lab1@switch0.example.com/", "exchange": name}
    with pytest.raises(ConfigError, match="not an exchange name") as err:
        _load(tmp_path, _described(links=[link]))
    assert err.value.option == "links[0].exchange"


@pytest.mark.parametrize("key, url, what", [
    ("broker", "amqp://adm%0Ain@localhost/", "bad account name"),     # pika decodes it
    ("broker", "amqp://adm%00@localhost/", "bad account name"),
    ("feeder", "amqp://fe%65der@localhost/", "bad account name"),
    ("feeder", "amqp://f\u0435eder@localhost/", "bad account name"),  # Cyrillic e
    ("broker", "amqp://admin@localhost/lab%0A1", "control character"),    # the vhost
    ("broker", "amqp://admin@localhost/lab1%00", "control character"),
    ("broker", "amqp://admin@localhost/lab%201", "bad vhost"),
    ("broker", "amqp://admin@localhost/lab1;x", "bad vhost"),
    ("base_url", "http://localhost:8090/pub%0A/", "control character"),
    ("base_url", "http://local;host:8090/", "bad host name"),
    ("broker", "amqp://admin@local%0Ahost/", "bad host name"),
])
def test_names_inside_urls_are_checked_whole(tmp_path, key, url, what):
    changes = {key: url}
    if key == "broker":       # the feeder on the same broker and vhost
        changes["feeder"] = url.replace("admin@", "feeder@").replace("adm%0Ain@", "feeder@") \
            .replace("adm%00@", "feeder@")
    with pytest.raises(ConfigError, match=what) as err:
        _load(tmp_path, _described(**changes))
    assert err.value.option == key


@pytest.mark.parametrize("account", ["lab1_x", "lab1%0A", "lab1.x", "l\u0430b1"])
def test_a_link_account_is_a_user_name(tmp_path, account):
    """It is a user (role link) in the neighbour's description."""
    link = {"cluster": "lab0", "broker": f"amqp://{account}@switch0.example.com/"}
    with pytest.raises(ConfigError, match="bad account name") as err:
        _load(tmp_path, _described(links=[link]))
    assert err.value.option == "links[0].broker"


def test_good_names_still_load(tmp_path):
    switch = _load(tmp_path, _described(
        broker="amqp://sarra_admin@10.0.0.1:5672/lab-1/east",
        feeder="amqp://feeder.lab1@10.0.0.1:5672/lab-1%2Feast",
        base_url="http://[::1]:8090/pub/",
        users={"alice-2": "source", "B0b": "subscriber"},
        links=[{"cluster": "lab_0", "broker": "amqp://lab1@switch0.example.com/x:y",
                "exchange": "xpublic.v2:a-b_c"}]))
    assert switch.vhost == "lab-1/east" and switch.feeder_user == "feeder.lab1"
    assert switch.links[0].exchange == "xpublic.v2:a-b_c"


@pytest.mark.parametrize("name", ["alice\n", "al_ice", "al.ice", "\u0430lice", "alice "])
def test_add_user_and_remove_user_check_the_name_whole(tmp_path, capsys, name):
    """Before anything: neither the file nor the broker (none here) is touched."""
    path = write(tmp_path, GOOD)
    assert main(["add-user", str(path), name, "source"]) == 2
    assert "bad user name" in capsys.readouterr().err
    assert main(["remove-user", str(path), name]) == 2
    assert "bad user name" in capsys.readouterr().err
    assert path.read_text() == GOOD


def test_ca_file_of_the_description_goes_into_every_component(tmp_path):
    tls = GOOD.replace("amqp://", "amqps://").replace("http://localhost:8090/",
                                                       "https://localhost/")
    switch = load_switch(str(write(tmp_path, tls + "ca_file: /etc/sarra/ca.crt\n")))
    assert switch.ca_file == "/etc/sarra/ca.crt"
    assert switch.management_url == "https://localhost:15671/api"
    assert switch_from_data(switch.as_data()).ca_file == "/etc/sarra/ca.crt"
    files = configs.component_configs(switch)
    assert files and all(_conf(text)["ca_file"] == "/etc/sarra/ca.crt" for text in files.values())
    assert "ca_file" not in _conf(configs.switch_sara(load_switch(str(write(tmp_path, GOOD)))))
    with pytest.raises(ConfigError, match="ca_file.*not an absolute path"):
        load_switch(str(write(tmp_path, tls + "ca_file: ca.crt\n")))
