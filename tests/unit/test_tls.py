"""The TLS options: ca_file, tls_verify and sr3's tlsRigour; which CA file a
server's certificate is verified against (sarra/tls.py). Against real
servers: tests/integration/test_tls.py."""
import ssl

import pytest

from sarra.config import load_config
from sarra.config.convert import convert_text
from sarra.config.credentials import Credentials
from sarra.errors import ConfigError
from sarra.tls import TlsPolicy, strip_url


def _cfg(confdir, text):
    (confdir / "subscribe").mkdir(exist_ok=True)
    (confdir / "subscribe" / "t.conf").write_text(text)
    return load_config("subscribe", "t")


@pytest.mark.parametrize("line, verify", [("tls_verify off", False), ("tls_verify on", True),
                                          ("tlsRigour lax", False), ("tlsRigour medium", True),
                                          ("tlsRigour strict", True), ("", True)])
def test_tls_verify_and_its_sr3_spelling(confdir, line, verify):
    cfg = _cfg(confdir, f"broker amqps://u@h/\n{line}\n")
    assert cfg.tls_verify is verify and cfg.tls.verify is verify


def test_a_bad_tls_rigour_names_file_line_and_values(confdir):
    with pytest.raises(ConfigError) as err:
        _cfg(confdir, "broker amqps://u@h/\ntlsRigour loose\n")
    text = str(err.value)
    assert "t.conf:2" in text and "tlsRigour" in text and "lax, medium or strict" in text


def test_convert_maps_tls_rigour():
    done = convert_text("broker amqps://u@h/\ntlsRigour lax\n", "subscribe")
    assert "tls_verify off" in done.text
    assert "tlsRigour is tls_verify off for lax" in " ".join(map(str, done.changes))
    bad = convert_text("tlsRigour loose\n", "subscribe")
    assert bad.text == "#sarra-convert: tlsRigour loose\n"
    assert "not a tlsRigour" in bad.changes[0].why and not bad.changes[0].mappable


def test_the_credentials_line_comes_before_the_option(tmp_path):
    creds = Credentials.from_text("amqps://a:pw@one.example/ ca_file=/etc/one.pem\n"
                                  "amqps://a:pw@two.example/\n")
    policy = TlsPolicy(ca_file="/etc/all.pem", credentials=creds)
    assert policy.ca_for("amqps://a@one.example/") == "/etc/one.pem"
    assert policy.ca_for("amqps://a@two.example/") == "/etc/all.pem"
    assert TlsPolicy(credentials=creds).ca_for("https://three.example/") is None


def test_contexts_check_names_from_tls_1_2_unless_off(tmp_path):
    on = TlsPolicy().context("amqps://h/")
    assert on.check_hostname and on.verify_mode == ssl.CERT_REQUIRED
    assert on.minimum_version == ssl.TLSVersion.TLSv1_2
    off = TlsPolicy(verify=False).context("amqps://h/")
    assert not off.check_hostname and off.verify_mode == ssl.CERT_NONE
    assert TlsPolicy(verify=False).requests_verify("https://h/") is False
    with pytest.raises(ConfigError, match="ca_file /nonexistent/ca.pem .for amqps://h:5671/."):
        TlsPolicy(ca_file="/nonexistent/ca.pem").context("amqps://u:secret@h:5671/x")


def test_the_warning_names_the_servers_without_passwords(confdir):
    cfg = _cfg(confdir, "broker amqps://u:secret@b.example:5671/\ntls_verify off\n"
                        "management_url https://b.example:15671/api\n")
    text = cfg.tls.warning(cfg.servers())
    assert "amqps://b.example:5671/" in text and "https://b.example:15671/" in text
    assert "secret" not in text and "NOT verified" in text
    assert _cfg(confdir, "broker amqps://u@b/\n").tls.warning(["amqps://b/"]) is None
    assert strip_url("amqps://u:pw@[::1]:5671/v") == "amqps://[::1]:5671/"
