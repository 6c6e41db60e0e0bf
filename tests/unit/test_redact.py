import pytest

from fnctl.redact import redact


@pytest.mark.parametrize("text,shown", [
    ("https://user:tok@host/repo.git", "https://host/repo.git"),
    ("cannot clone https://tok@h/r: unable to access 'https://tok@h/r/'", "cannot clone https://h/r: unable to access 'https://h/r/'"),
    ("https://u:p@ss@h.io/r", "https://h.io/r"),                  # a raw '@' in the password
    ("ssh://git@host:22/r", "ssh://host:22/r"),
    ("https://u:t@h?x=1@2", "https://h?x=1@2"),
    ("git@github.com:a/b.git", "git@github.com:a/b.git"),        # scp-like: a user name, no password
    ("https://host/a@b", "https://host/a@b"),                     # '@' in the path is not userinfo
    ("no url here, me@example.com", "no url here, me@example.com"),
])
def test_userinfo_is_stripped_from_every_url(text, shown):
    assert redact(text) == shown


def test_a_concealed_secret_is_masked_everywhere_after():
    from fnctl import redact as module

    module.conceal("pa55-word-xyz")
    try:
        assert module.redact("login failed for pa55-word-xyz at https://u:t@h/x") == "login failed for *** at https://h/x"
    finally:
        module._concealed.discard("pa55-word-xyz")
