"""What every Tune script in examples/ takes: where its results go, its name, and a smoke-test switch."""

from __future__ import annotations

import argparse

from .preflight import SweepError, storage_uri


def _storage(value: str) -> str:
    try:
        return storage_uri(value)  # Tune refuses relative paths; a relative one is fine here
    except SweepError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def tune_script_parser(doc: str, name: str, smoke_test: str) -> argparse.ArgumentParser:
    """The parser of a Tune script: ``--storage`` (absolute once parsed), ``--name`` (default `name`) and
    ``--smoke-test`` (`smoke_test` says what it runs); a script adds its own arguments before parsing."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", default="./results", type=_storage, help="folder (relative is fine) or s3:// URI")
    parser.add_argument("--name", default=name)
    parser.add_argument("--smoke-test", action="store_true", help=smoke_test)
    return parser
