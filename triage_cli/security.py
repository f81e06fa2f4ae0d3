"""``triage sign-bundle``: sign a bundle you trust with ``TRIAGE_BUNDLE_SIGNING_KEY``.

``triage train`` and ``triage retrain`` sign what they write when the key is
set; this command is for bundles made before the key existed, or copied in from
a machine you control. It checks every file against the manifest first.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sign-bundle",
        help="sign a bundle folder with TRIAGE_BUNDLE_SIGNING_KEY",
        description="Write an HMAC over the bundle's checksums into its manifest, so a service "
        "with the same TRIAGE_BUNDLE_SIGNING_KEY will load it. Sign only bundles "
        "you made or checked: a bundle is code.",
    )
    p.add_argument("bundle", help="bundle folder")
    p.set_defaults(func=run_sign)


def run_sign(args: argparse.Namespace) -> int:
    from triage.bundle import sign_bundle
    from triage.bundle_trust import KEY_VARIABLE
    from triage.errors import ConfigError

    from . import workspace

    key = workspace.setting(KEY_VARIABLE) or None
    if not key:
        raise ConfigError(f"set {KEY_VARIABLE} (the key the service verifies with)")
    sign_bundle(args.bundle, key)
    print(f"signed {args.bundle}")
    return 0
