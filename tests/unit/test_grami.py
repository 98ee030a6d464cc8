"""The GRAMI parser reads exactly what A-REX writes and refuses everything a shell would interpret."""

import pytest
from hypothesis import given, strategies as st

from arc_bridge.errors import JobRejected
from arc_bridge.grami import MAX_GRAMI_BYTES, parse_grami, quote

names = st.from_regex(r"joboption_[a-z][a-z0-9_]{0,20}", fullmatch=True)
values = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=80)


@given(st.dictionaries(names, values, max_size=12))
def test_any_values_quoted_like_arex_read_back_unchanged(fields):
    text = "".join(f"{k}={quote(v)}\n" for k, v in fields.items())
    assert parse_grami(text.encode()) == fields


@given(values)
def test_quote_tricks_never_escape_the_value(value):
    text = f"joboption_arg_0={quote(value)}\njoboption_queue='default'\n"
    assert parse_grami(text.encode()) == {"joboption_arg_0": value, "joboption_queue": "default"}


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_fail_with_a_one_line_reason(data):
    try:
        parse_grami(data)
    except JobRejected as e:
        assert "\n" not in str(e) and str(e)


def test_later_assignment_wins_as_in_a_shell():
    assert parse_grami(b"joboption_jobid='a'\njoboption_jobid=b\n") == {"joboption_jobid": "b"}


def test_comments_and_blank_lines_are_skipped():
    assert parse_grami(b"# made by A-REX\n\n  joboption_queue='q'\n") == {"joboption_queue": "q"}


def test_escaped_quote_between_quoted_runs():
    assert parse_grami(b"joboption_arg_1='it'\\''s'\n") == {"joboption_arg_1": "it's"}


def test_multiline_value_inside_quotes():
    assert parse_grami(b"joboption_arg_1='a\nb'\njoboption_queue='q'\n")["joboption_arg_1"] == "a\nb"


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"joboption_queue=$(reboot)\n", "unquoted shell character '$'"),
        (b"joboption_queue=`id`\n", "unquoted shell character '`'"),
        (b"joboption_queue='a';rm -rf /\n", "unquoted shell character ';'"),
        (b"joboption_queue='open\n", "unterminated quote"),
        (b"rm -rf /\n", "expected NAME='value'"),
        (b"joboption_queue=a b\n", "expected NAME='value'"),
        (b"joboption_queue=\"x\"\n", "unquoted shell character '\"'"),
    ],
)
def test_shell_syntax_is_refused(line, reason):
    with pytest.raises(JobRejected, match=reason.replace("$", r"\$").replace("(", r"\(")):
        parse_grami(line)


def test_binary_and_oversized_files_are_refused():
    with pytest.raises(JobRejected, match="NUL byte"):
        parse_grami(b"joboption_queue='a\0b'\n")
    with pytest.raises(JobRejected, match="not UTF-8"):
        parse_grami(b"joboption_queue='\xff\xfe'\n")
    with pytest.raises(JobRejected, match="more than"):
        parse_grami(b"#" * (MAX_GRAMI_BYTES + 1))
