"""Issue 11, item 4: builds trust the machine's CA bundle and use the user's proxy; a TLS failure says so."""

from __future__ import annotations

import os
import ssl

import pytest

from fnctl import config, templates, trust
from fnctl.errors import BuildError, UsageError

PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """No config file, no proxy, and SSL_CERT_FILE naming a bundle of our own."""
    bundle = tmp_path / "machine.pem"
    bundle.write_bytes(PEM)
    empty = tmp_path / "config.yaml"
    empty.write_text("{}\n")
    monkeypatch.setenv("FNCTL_CONFIG", str(empty))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    for name in trust.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    config.load.cache_clear()
    yield bundle
    config.load.cache_clear()


def _config(path, text: str) -> None:
    path.write_text(text)
    config.load.cache_clear()


def test_the_machines_bundle_by_default(machine):
    assert trust.ca_bundle() == (str(machine), PEM)


def test_without_ssl_cert_file_the_system_store(machine, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    found = trust.ca_bundle()
    system = [p for p in (ssl.get_default_verify_paths().cafile, *trust.SYSTEM_BUNDLES) if p and os.path.isfile(p)]
    assert (found is None) == (not system)
    if found:
        assert found[0] == system[0] and trust.PEM_MARKER in found[1]


def test_option_beats_config_beats_machine(machine, tmp_path, monkeypatch):
    mine, team = tmp_path / "mine.pem", tmp_path / "team.pem"
    mine.write_bytes(PEM + b"# mine\n")
    team.write_bytes(PEM + b"# team\n")
    _config(tmp_path / "config.yaml", "build:\n  ca-bundle: team.pem\n")    # relative to the config file
    assert trust.ca_bundle() == (str(team), team.read_bytes())
    assert trust.ca_bundle(str(mine)) == (str(mine), mine.read_bytes())
    assert trust.ca_bundle("none") is None
    _config(tmp_path / "config.yaml", "build:\n  ca-bundle: none\n")
    assert trust.ca_bundle() is None
    _config(tmp_path / "config.yaml", "build:\n  ca-bundle: false\n")
    assert trust.ca_bundle() is None


@pytest.mark.parametrize("content, words", [(None, "cannot be read"), (b"not a certificate\n", "no PEM")])
def test_a_named_bundle_that_is_not_one_is_a_usage_error(machine, tmp_path, content, words):
    path = tmp_path / "bad.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError) as e:
        trust.ca_bundle(str(path))
    assert words in e.value.message and str(path) in e.value.message and e.value.exit_code == 2


def test_the_bundle_is_a_secret_parameter_of_the_templates_that_download(machine):
    for name in ("python", "node4", "go"):
        t = templates.find(name)
        values = t.resolve({}, cfg=config.Config())
        assert t.secrets(values)["CA_BUNDLE"] == PEM.decode()
        assert "MIIBfake" not in t.render(values, "rt:1")          # never an ARG, never in the context
        assert "--mount=type=secret,id=CA_BUNDLE" in t.dockerfile
    assert "CA_BUNDLE" not in templates.find("python").secrets(templates.find("python").resolve({}, ca_bundle="none"))
    with pytest.raises(UsageError) as e:
        templates.find("python").resolve({"CA_BUNDLE": "x"})
    assert "--ca-bundle" in e.value.hint


def test_a_ca_bundle_parameter_must_be_secret():
    doc = {"name": "t", "dockerfileInline": "FROM x\n", "parameters": [{"name": "CA", "machine": "ca-bundle"}]}
    with pytest.raises(UsageError, match="ca-bundle"):
        templates.parse(doc, {}, "test")


def test_build_section_of_the_config_file(machine, tmp_path):
    _config(tmp_path / "config.yaml", "build:\n  proxy: false\n  context-warning: 2MiB\n")
    assert config.load().build == config.BuildDefaults(proxy=False, context_warning=2 * 1024 * 1024)
    for text, words in (("build:\n  colour: red\n", "unknown key build.colour"),
                        ("build:\n  context-warning: lots\n", "context-warning"),
                        ("build:\n  proxy: 3\n", "build.proxy")):
        _config(tmp_path / "config.yaml", text)
        with pytest.raises(UsageError, match=words):
            config.load()


def test_proxies_are_the_users_and_a_loopback_one_stays_off_the_cluster(machine, monkeypatch, tmp_path):
    assert trust.proxies() == {}
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("no_proxy", "localhost,.corp.example")
    assert trust.proxies() == {"HTTPS_PROXY": "http://proxy.corp.example:3128", "no_proxy": "localhost,.corp.example"}
    assert trust.proxies(for_cluster=True) == trust.proxies()
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert trust.proxies()["HTTPS_PROXY"] == "http://127.0.0.1:3128"
    assert trust.proxies(for_cluster=True) == {}                 # only no_proxy left: nothing to pass
    _config(tmp_path / "config.yaml", "build:\n  proxy: false\n")
    assert trust.proxies() == {}


PIP = """\
WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection broken by \
'SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed \
certificate in certificate chain (_ssl.c:992)'))': /simple/six/
Could not fetch URL https://pypi.org/simple/six/: There was a problem confirming the ssl certificate: \
HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded with url: /simple/six/
ERROR: No matching distribution found for six"""
GO = ('go: github.com/aws/aws-lambda-go@v1.47.0: Get "https://proxy.golang.org/github.com/aws/aws-lambda-go/@v/'
      'v1.47.0.mod": tls: failed to verify certificate: x509: certificate signed by unknown authority')
NPM = ("npm ERR! code SELF_SIGNED_CERT_IN_CHAIN\nnpm ERR! errno SELF_SIGNED_CERT_IN_CHAIN\n"
       "npm ERR! request to https://registry.npmjs.org/left-pad failed, reason: self-signed certificate in "
       "certificate chain")
GIT = ("fatal: unable to access 'https://git.corp.example/team/lib.git/': server certificate verification failed. "
       "CAfile: none CRLfile: none")


@pytest.mark.parametrize("log, host", [(PIP, "pypi.org"), (GO, "proxy.golang.org"), (NPM, "registry.npmjs.org"),
                                       (GIT, "git.corp.example")])
def test_a_tls_failure_names_the_host_and_how_to_add_a_ca(log, host):
    error = BuildError("the image build failed at [4/4] RUN pip install: exit code: 1",
                       "fix the function or its dependencies", details=log)
    assert host in error.message and "TLS certificate" in error.message
    assert "--ca-bundle" in error.hint and "fix the function" not in error.hint
    assert "the image build failed at [4/4]" in error.details        # nothing the builder said is lost


def test_the_go_templates_own_words_stay_with_the_ca_hint():
    log = f"{GO}\nfnctl-error: the Go build could not fetch module x\nfnctl-hint: set GOPROXY"
    error = BuildError("kaniko exited with code 1", "see the log", details=log)
    assert error.message == "the Go build could not fetch module x" and "--ca-bundle" in error.hint


def test_other_build_failures_keep_their_words():
    error = BuildError("the image build failed: exit code: 1", "fix the function",
                       details="ERROR: No matching distribution found for sixx")
    assert error.hint == "fix the function" and error.message == "the image build failed: exit code: 1"
