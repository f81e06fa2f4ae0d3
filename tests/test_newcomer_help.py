"""A newcomer's first commands: every ``triage ... --help`` opens with a sentence saying
what the command does, every argument says what it is, and a group named without its
action lists the actions it has."""

from __future__ import annotations

import argparse

from triage_cli import build_parser, main


def _parsers():
    def walk(parser, path):
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, path + [name])

    return list(walk(build_parser(), ["triage"]))


def test_every_command_s_help_says_what_it_does():
    # before: breaches, db, db upgrade, mail, webhooks add/list/disable/test, report
    # confidence/knowledge/sla printed only their usage line and options
    bare = [" ".join(path) for path, parser in _parsers() if not (parser.description or "").strip()]
    assert bare == []


def test_every_positional_argument_says_what_it_is():
    # before: webhooks add's url and webhooks disable/test's id had no word
    bare = [
        " ".join(path + [a.dest])
        for path, parser in _parsers()
        for a in parser._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction) and not a.help
    ]
    assert bare == []


def test_a_group_without_its_action_lists_the_actions(capsys):
    # before: "triage mail: error: the following arguments are required: ACTION", nothing more
    try:
        main(["mail"])
    except SystemExit as stop:
        assert stop.code == 2
    err = capsys.readouterr().err
    assert "poll a Maildir/mbox/IMAP mailbox into tickets" in err and "name one of: poll" in err
