"""``dicomweb-server peer``: register, list, remove and test the peer archives searched with this one.

A secret given as ``-`` (``--token -``, ``--client-secret -``) is read from standard input, so it
stays out of the shell history and the process list. No command prints a secret.
"""

from __future__ import annotations

import argparse
import datetime
import sys

from dicomweb_server.cli.records import actor, add_command, print_table, run_on_index
from dicomweb_server.config import Settings
from dicomweb_server.errors import DependencyUnavailable
from dicomweb_server.federation.client import probe_peer
from dicomweb_server.federation.credentials import PeerAccess
from dicomweb_server.federation.peers import (
    DEFAULT_TIMEOUT,
    NewPeer,
    add_peer,
    get_peer,
    list_peers,
    remove_peer,
)
from dicomweb_server.federation.sealing import SealError, load_peer_key
from dicomweb_server.index.database import Index


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "peer",
        help="register, list, remove and test peer archives",
        description="Peers are other DICOMweb archives that federated searches under /federation/dicom-web "
        "reach, and that users of this archive retrieve and import from through it.",
    )
    commands = parser.add_subparsers(dest="peer_command", metavar="COMMAND", required=True)
    _add_add_command(commands)

    add_command(commands, "list", run_list, help="list peers", description="List the peers, without secrets.")

    remove = add_command(
        commands,
        "remove",
        run_remove,
        help="remove a peer",
        description="Remove a peer and its stored credentials; federated searches stop reaching it.",
    )
    remove.add_argument("name", metavar="NAME")

    test = add_command(
        commands,
        "test",
        run_test,
        help="search a peer once and report the latency or the first error",
        description="Search the peer for one study with its credentials and timeout, and print how long "
        "it took or what failed. Exits with 1 when the search failed.",
    )
    test.add_argument("name", metavar="NAME")


def _add_add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add = add_command(
        commands,
        "add",
        run_add,
        help="register a peer",
        description="Register a peer: its DICOMweb root URL and how this archive authenticates to it, "
        "with a bearer token or with OAuth 2.0 client credentials. The secret is stored encrypted "
        "with the peer key (DICOMWEB_PEER_SECRET_KEY, or the file peer-secret-key in the data folder).",
    )

    add.add_argument("name", metavar="NAME", help="letters, digits, '.', '_' or '-', such as mercy-pacs")
    add.add_argument(
        "--url",
        required=True,
        help="the peer's DICOMweb root URL, such as https://pacs.example.org/dicom-web",
    )

    credentials = add.add_argument_group("credentials (a bearer token, or the three OAuth 2.0 values)")
    credentials.add_argument(
        "--token",
        metavar="TOKEN",
        help="bearer token the peer issued to this archive ('-' reads it from standard input)",
    )
    credentials.add_argument("--client-id", metavar="ID", help="OAuth 2.0 client id")
    credentials.add_argument(
        "--client-secret", metavar="SECRET", help="OAuth 2.0 client secret ('-' reads it from standard input)"
    )
    credentials.add_argument("--token-url", metavar="URL", help="OAuth 2.0 token endpoint of the peer")
    credentials.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help="scope to request with the client credentials; repeat or separate with spaces",
    )

    add.add_argument(
        "--as-org",
        metavar="ORG",
        help="the external organisation the peer acts as when it queries this archive",
    )

    tls = add.add_argument_group("TLS")
    tls.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help="PEM file of the CA certificates that verify the peer (default: the system's)",
    )
    tls.add_argument(
        "--client-cert", metavar="FILE", help="PEM file of the client certificate sent to the peer"
    )
    tls.add_argument("--client-key", metavar="FILE", help="PEM file of the client certificate's private key")

    add.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds one request to the peer may take (default {DEFAULT_TIMEOUT:g})",
    )


def _secret(value: str | None) -> str | None:
    if value == "-":
        return sys.stdin.readline().strip()
    return value


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def run_add(arguments: argparse.Namespace) -> int:
    new = NewPeer(
        name=arguments.name,
        url=arguments.url,
        token=_secret(arguments.token),
        client_id=arguments.client_id,
        client_secret=_secret(arguments.client_secret),
        token_url=arguments.token_url,
        oauth_scopes=tuple(scope for given in arguments.scope for scope in given.split()),
        as_organisation=arguments.as_org,
        ca_bundle=arguments.ca_bundle,
        client_certificate=arguments.client_cert,
        client_key=arguments.client_key,
        timeout=arguments.timeout,
    )

    async def work(settings: Settings, index: Index) -> int:
        try:
            key = load_peer_key(settings, create=True)
        except SealError as error:
            raise DependencyUnavailable(str(error)) from None
        async with index.write() as connection:
            added = await add_peer(connection, new, key, by=actor(), now=_now())
        acting = (
            f"; it acts as {added.organisation!r} when it queries this archive" if added.organisation else ""
        )
        print(f"Added the peer {added.name!r} at {added.url} ({added.authentication}){acting}.")
        return 0

    return run_on_index(arguments, work)


def run_list(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        async with index.read() as connection:
            found = await list_peers(connection)
        rows = [
            [item.name, item.url, str(item.authentication), item.organisation or "", f"{item.timeout:g}"]
            for item in found
        ]
        print_table(["NAME", "URL", "AUTHENTICATION", "AS ORGANISATION", "TIMEOUT (S)"], rows)
        return 0

    return run_on_index(arguments, work)


def run_remove(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        async with index.write() as connection:
            removed = await remove_peer(connection, arguments.name)
        print(f"Removed the peer {removed.name!r} and its stored credentials.")
        return 0

    return run_on_index(arguments, work)


def run_test(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        async with index.read() as connection:
            found = await get_peer(connection, arguments.name)
        try:
            access = PeerAccess.open(found, load_peer_key(settings, create=False))
        except SealError as error:
            raise DependencyUnavailable(str(error)) from None
        result = await probe_peer(access)
        milliseconds = round(result.elapsed * 1000)
        if not result.ok:
            print(f"Peer {found.name!r} failed after {milliseconds} ms: it {result.error}.")
            return 1
        found_text = "1 result" if result.results == 1 else f"{result.results} results"
        print(f"Peer {found.name!r} completed a study search in {milliseconds} ms ({found_text}).")
        return 0

    return run_on_index(arguments, work)
