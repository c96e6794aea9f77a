#!/usr/bin/env python3
"""A Python app's licensing check at launch, ready to copy (package `licensing`, see
bindings/python/README.md).

    python startup_check.py --public-key keys/jwks.json [--product com.example.cad] [--store DIR]
                            [--install TOKEN_FILE] [--version 2.4.0] [--release-date UNIX_SECONDS]
                            [--feature NAME]...

A real app ships its public keys and knows its own version and release date instead of taking
them as arguments. Exit status: 0 when the license may be used, 1 when not, 2 on setup errors.
"""

import argparse
import sys

import licensing as lic


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="licensing startup check")
    p.add_argument("--public-key", required=True, help="SPKI PEM, JWK or JWK Set")
    p.add_argument("--product", default="com.example.cad")
    p.add_argument("--store", help="store directory (default: the user's data directory)")
    p.add_argument("--install", help="install this token file first")
    p.add_argument("--version")
    p.add_argument("--release-date", type=int)
    p.add_argument("--feature", action="append", default=[])
    args = p.parse_args(argv)

    try:
        with open(args.public_key, encoding="utf-8") as f:
            trust = lic.TrustStore.from_document(f.read())
        if args.store:
            store = lic.LicenseStore.at(args.store)
        else:
            store = lic.LicenseStore.for_app("com", "Example", "CAD", lic.Scope.USER)
        licensing = lic.Licensing(
            trust,
            args.product,
            store,
            lic.LicensingOptions(app_version=args.version, release_date=args.release_date, features=args.feature),
        )
        if args.install:
            with open(args.install, encoding="utf-8") as f:
                verdict = licensing.install(f.read(), lic.unix_now())
            print(f"install: {lic.status_name(verdict.status)} ({verdict.reason})")
        verdict = licensing.check_at_startup_now()
    except (OSError, lic.LicensingError) as e:
        print(f"startup_check: {e}", file=sys.stderr)
        return 2

    print(f"license: {lic.status_name(verdict.status)} ({verdict.reason})")
    if verdict.grace_left is not None:
        print(f"grace period: {verdict.grace_left // 86_400} days left, please renew")
    for feature in verdict.features:
        print(f"feature {feature.name}: {lic.status_name(feature.status)}")
    if verdict.status == lic.Status.NO_LICENSE:
        print("=> show the activation dialog")
    elif verdict.status == lic.Status.CLOCK_TAMPERED:
        print("=> ask the user to correct the system clock")
    elif lic.status_is_usable(verdict.status):
        print("=> start the app")
    else:
        print(f"=> the app may not start: {lic.status_message(verdict.status)}")
    return 0 if lic.status_is_usable(verdict.status) else 1


if __name__ == "__main__":
    sys.exit(main())
