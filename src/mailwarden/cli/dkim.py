"""`mailwarden dkim ...`: verify and sign messages, generate keys."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailwarden import runtime
from mailwarden.authres import dkim_resinfo
from mailwarden.dkim import (
    Algorithm,
    DKIMStatus,
    DKIMVerifier,
    KeyType,
    SigningError,
    generate_key,
    key_name,
    key_record,
    load_private_key,
    parse_tag_list,
    sign,
    txt_strings,
    write_private_key,
    zone_entry,
)
from mailwarden.dkim.keygen import MAX_RSA_BITS, MIN_RSA_BITS
from mailwarden.dns import is_domain_name, to_ascii

from .common import (
    BoundedInt,
    DNSOptions,
    console,
    dns_options,
    fail,
    json_option,
    load_message,
    print_json,
    read_bytes,
)
from .common import parse_now as parse_now

RESULT_STYLE = {
    DKIMStatus.PASS: "bold green",
    DKIMStatus.FAIL: "bold red",
    DKIMStatus.POLICY: "yellow",
    DKIMStatus.NEUTRAL: "cyan",
    DKIMStatus.NONE: "dim",
    DKIMStatus.TEMPERROR: "magenta",
    DKIMStatus.PERMERROR: "bold magenta",
}
ALGORITHMS = {
    "rsa": Algorithm.RSA_SHA256,
    "rsa-sha256": Algorithm.RSA_SHA256,
    "ed25519": Algorithm.ED25519_SHA256,
    "ed25519-sha256": Algorithm.ED25519_SHA256,
}


@click.group()
def dkim() -> None:
    """DKIM (RFC 6376, RFC 8463): verify and sign messages, make keys."""


@dkim.command("verify")
@click.argument("file")
@click.option("--now", "now_text", metavar="TIMESTAMP", help="Check t=/x= at this time.")
@click.option("--allow-sha1", is_flag=True, help="Accept rsa-sha1 (RFC 8301 forbids it).")
@json_option
@dns_options
def verify(
    file: str, now_text: str | None, allow_sha1: bool, as_json: bool, dns: DNSOptions
) -> None:
    """Verify every DKIM-Signature of the message in FILE ("-": standard input).

    Files with bare LF line endings are read as CRLF. Exit status 0 whatever the results.
    """
    message, _ = load_message(file)
    verifier = DKIMVerifier(dns.build(), allow_sha1=allow_sha1)
    if now_text is not None:
        now = parse_now(now_text)
        verifier.clock = lambda: now
    results = runtime.run(verifier.verify(message))
    if as_json:
        print_json({"signatures": [r.to_dict() for r in results]})
        return
    out = console()
    if not results:
        out.print("DKIM result: [dim]none[/] (the message has no DKIM-Signature)")
        return
    for n, r in enumerate(results, 1):
        out.print(f"signature {n}: [{RESULT_STYLE[r.result]}]{r.result.value}[/] ", end="")
        out.print(f"({r.reason})", markup=False)
        key = f"{r.key_bits}-bit key" if r.key_bits else "no key"
        out.print(
            f"  d={r.domain or '?'} s={r.selector or '?'} a={r.algorithm or '?'}, {key}, "
            f"header.b={r.header_b or '?'}",
            markup=False,
        )
        out.print(f"  {dkim_resinfo(r).format()}", markup=False)  # as the gateway writes it


def split_headers(text: str) -> list[str]:
    names = [h.strip() for h in text.replace(",", ":").split(":") if h.strip()]
    if not names:
        fail("--headers is empty")
    return names


@dkim.command("sign")
@click.argument("file")
@click.option("--domain", "-d", required=True, help="Signing domain (d=).")
@click.option("--selector", "-s", required=True, help="Selector (s=).")
@click.option("--key", "key_file", required=True, metavar="KEYFILE", help="Private key file.")
@click.option(
    "--algorithm",
    type=click.Choice(sorted(ALGORITHMS), case_sensitive=False),
    help="Signing algorithm. [default: from the key]",
)
@click.option("--headers", metavar="LIST", help="Header fields to sign (comma or colon list).")
@json_option
def sign_command(
    file: str,
    domain: str,
    selector: str,
    key_file: str,
    algorithm: str | None,
    headers: str | None,
    as_json: bool,
) -> None:
    """Sign the message in FILE and write the signed message to standard output.

    Relaxed/relaxed canonicalization; each header field signed is over-signed. A file with bare
    LF line endings gets a signature with bare LF too. --json prints the header instead.
    """
    message, data = load_message(file)
    try:
        private_key = load_private_key(read_bytes(key_file))
    except ValueError as exc:
        fail(f"{key_file}: {exc}")
    chosen = ALGORITHMS[algorithm.lower()] if algorithm else None
    try:
        header = sign(
            message,
            domain,
            selector,
            private_key,
            algorithm=chosen,
            headers=split_headers(headers) if headers is not None else None,
        )
    except SigningError as exc:
        fail(str(exc))
    if as_json:
        tags = parse_tag_list(header.split(b":", 1)[1])
        print_json(
            {
                "header": header.decode("ascii").rstrip("\r\n"),
                "domain": tags["d"],
                "selector": tags["s"],
                "algorithm": tags["a"],
                "signed_headers": [h.strip() for h in tags["h"].split(":")],
            }
        )
        return
    if b"\n" in data and b"\r\n" not in data:  # a file with bare LF: keep its convention
        sys.stdout.buffer.write(header.replace(b"\r\n", b"\n") + data)
    else:
        sys.stdout.buffer.write(header + message.raw)
    sys.stdout.buffer.flush()


@dkim.command("keygen")
@click.option("--domain", "-d", required=True, help="The domain the key signs for.")
@click.option("--selector", "-s", required=True, help="The selector to publish it under.")
@click.option(
    "--algorithm",
    type=click.Choice(["rsa", "ed25519"], case_sensitive=False),
    default="rsa",
    show_default=True,
)
@click.option(
    "--bits",
    type=BoundedInt(min=MIN_RSA_BITS, max=MAX_RSA_BITS),
    help="RSA key size (RFC 8301 §3.2: at least 1024). [default: 2048]",
)
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    help="Where to write the private key. [default: SELECTOR.DOMAIN.pem]",
)
@json_option
def keygen(
    domain: str,
    selector: str,
    algorithm: str,
    bits: int | None,
    output: str | None,
    as_json: bool,
) -> None:
    """Generate a key pair: write the private key (mode 0600) and print the TXT record."""
    try:
        domain_ascii = to_ascii(domain.strip().rstrip(".").lower())
    except ValueError as exc:
        fail(str(exc))
    if not is_domain_name(domain_ascii):
        fail(f"invalid domain {domain!r}")
    selector = selector.strip().lower()
    if not is_domain_name(selector):
        fail(f"invalid selector {selector!r}")
    key_type = KeyType(algorithm.lower())
    if key_type is KeyType.ED25519 and bits is not None:
        fail("--bits applies to RSA keys only")
    try:
        private_key = generate_key(key_type, bits or 2048)
    except ValueError as exc:
        fail(str(exc))
    path = Path(output or f"{selector}.{domain_ascii}.pem")
    try:
        write_private_key(path, private_key)
    except FileExistsError:
        fail(f"{path} already exists: not overwriting it")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    record = key_record(private_key)
    strings = txt_strings(record)
    name = key_name(selector, domain_ascii)
    if as_json:
        print_json(
            {
                "private_key_file": str(path),
                "name": name,
                "algorithm": key_type.value,
                "bits": (bits or 2048) if key_type is KeyType.RSA else 256,
                "record": record,
                "txt_strings": strings,
            }
        )
        return
    out = console()
    out.print(f"private key written to {path} (mode 0600)", markup=False)
    out.print(f"publish this TXT record at {name}:", markup=False)
    click.echo(zone_entry(selector, domain_ascii, record))
