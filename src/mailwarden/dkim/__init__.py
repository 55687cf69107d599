"""mailwarden.dkim: DomainKeys Identified Mail (RFC 6376, RFC 8301, RFC 8463).

`DKIMVerifier(resolver).verify(message)` returns one `DKIMResult` per DKIM-Signature;
`sign` / `sign_many` make DKIM-Signature fields; `keygen` makes key pairs and their records.
The building blocks ARC reuses are exported too: `parse_tag_list`, `canonicalize_header`,
`canonicalize_body`, `body_hash`, `BodyHasher`, `header_hash_input`, `sign_data`,
`verify_data`, `KeyRecord`, `parse_key_record`, `fetch_key`, `sign_header`.
"""

from .canon import (
    BodyHasher,
    Canon,
    StreamingBody,
    body_hash,
    canonicalize_body,
    canonicalize_header,
    header_hash_input,
    parse_canonicalization,
)
from .crypto import Algorithm, PrivateKey, load_private_key, sign_data, verify_data
from .key import (
    KeyFailure,
    KeyRecord,
    KeyRecordError,
    KeyType,
    PublicKey,
    fetch_key,
    key_name,
    load_public_key,
    parse_key_record,
)
from .keygen import (
    generate_key,
    key_record,
    private_key_pem,
    txt_strings,
    write_private_key,
    zone_entry,
)
from .result import DKIMReason, DKIMResult, DKIMStatus
from .sign import (
    DEFAULT_SIGNED_HEADERS,
    SigningError,
    SigningKey,
    sign,
    sign_header,
    sign_many,
    signed_header_names,
)
from .signature import Signature, SignatureError, header_b_prefixes, parse_signature
from .tags import (
    TagListError,
    decode_quoted_printable,
    encode_quoted_printable,
    format_tag_list,
    parse_tag_list,
    strip_tag_value,
)
from .verify import DKIMVerifier

__all__ = [
    "DEFAULT_SIGNED_HEADERS",
    "Algorithm",
    "BodyHasher",
    "Canon",
    "DKIMReason",
    "DKIMResult",
    "DKIMStatus",
    "DKIMVerifier",
    "KeyFailure",
    "KeyRecord",
    "KeyRecordError",
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "Signature",
    "SignatureError",
    "SigningError",
    "SigningKey",
    "StreamingBody",
    "TagListError",
    "body_hash",
    "canonicalize_body",
    "canonicalize_header",
    "decode_quoted_printable",
    "encode_quoted_printable",
    "fetch_key",
    "format_tag_list",
    "generate_key",
    "header_b_prefixes",
    "header_hash_input",
    "key_name",
    "key_record",
    "load_private_key",
    "load_public_key",
    "parse_canonicalization",
    "parse_key_record",
    "parse_signature",
    "parse_tag_list",
    "private_key_pem",
    "sign",
    "sign_data",
    "sign_header",
    "sign_many",
    "signed_header_names",
    "strip_tag_value",
    "txt_strings",
    "verify_data",
    "write_private_key",
    "zone_entry",
]
