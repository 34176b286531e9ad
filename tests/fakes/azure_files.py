"""A stand-in for the Azure Files REST service (one account), for tests: Azurite has no file service.

Plain HTTP on 127.0.0.1 from a thread of the test process, at ``http://127.0.0.1:<port>/<share>/...``.
It serves the two calls the file share adapter makes, and checks them as Azure Files would:

- List Directories and Files (``GET /<share>/<dir>?restype=directory&comp=list``): the request must
  carry ``x-ms-version`` and ``x-ms-date``, and an ``Authorization: SharedKey <account>:<signature>``
  whose signature is the HMAC-SHA256 of the documented string-to-sign with the account key (a wrong
  key or a request changed on the way is a 403 AuthenticationFailed); the answer is the service's XML.
- Get File by SAS URL (``GET /<share>/<path>?sv=..&se=..&sr=f&sp=r&sig=..``): read permission on a
  file, not expired, and a signature that matches the URL's own path and fields.

Files live in memory (``put_file``). Every request is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

from azure.storage.fileshare import generate_file_sas

try:
    from tests.fakes.loopback_http import LoopbackServer
except ModuleNotFoundError:  # plain `pytest`: tests/ itself is on sys.path
    from fakes.loopback_http import LoopbackServer  # type: ignore[no-redef]

_SIGNED_HEADERS = ("Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type", "Date",
                   "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeAzureFiles:
    def __init__(self, account: str, key: str) -> None:
        self.account, self.key = account, key
        self.files: dict[tuple[str, str], tuple[bytes, datetime]] = {}  # (share, path) -> (content, modified)
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._http: LoopbackServer | None = None

    def __enter__(self) -> FakeAzureFiles:
        self._http = LoopbackServer(self._handle, "fake-azure-files")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.stop()

    @property
    def endpoint(self) -> str:
        assert self._http is not None, "not started"
        return self._http.base_url

    def share_url(self, share: str) -> str:
        return f"{self.endpoint}/{share}"

    def put_file(self, share: str, path: str, data: bytes, modified: datetime | None = None) -> None:
        with self._lock:
            self.files[(share, path.strip("/"))] = (data, modified or datetime.now(UTC).replace(microsecond=0))

    # ------------------------------------------------------------ HTTP

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = parse_qs(url.query, keep_blank_values=True)
        headers = dict(handler.headers.items())
        with self._lock:
            self.requests.append(Recorded(handler.command, url.path, query, headers))
        path = unquote(url.path).strip("/")
        share, _, inner = path.partition("/")
        try:
            if "sig" in query:
                status, body, content_type = self._sas_get(url.path, share, inner, query)
            else:
                self._check_shared_key(handler, url.path, query)
                if query.get("restype") != ["directory"] or query.get("comp") != ["list"]:
                    raise _Refused(400, "UnsupportedQueryParameter", "Only directory listings are served here.")
                status, body, content_type = 200, self._listing(share, inner, query).encode(), "application/xml"
        except _Refused as refused:
            status, content_type = refused.status, "application/xml"
            body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{refused.code}</Code>'
                    f"<Message>{escape(refused.message)}</Message></Error>").encode()
            handler.send_response(status)
            handler.send_header("x-ms-error-code", refused.code)
        else:
            handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("x-ms-version", headers.get("x-ms-version", "2025-11-05"))
        handler.end_headers()
        handler.wfile.write(body)

    def _check_shared_key(self, handler: BaseHTTPRequestHandler, raw_path: str, query: dict[str, list[str]]) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        for needed in ("x-ms-version", "x-ms-date"):
            if needed not in headers:
                raise _Refused(400, "MissingRequiredHeader", f"An HTTP header that's mandatory for this request is "
                                                             f"not specified: {needed}.")
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        account, _, signature = credential.partition(":")
        if scheme != "SharedKey" or account != self.account:
            raise _Refused(403, "AuthenticationFailed", "The Authorization header is not SharedKey for this account.")
        values = [headers.get(name.lower(), "") for name in _SIGNED_HEADERS]
        if values[2] == "0":
            values[2] = ""
        canonical_headers = "".join(f"{k}:{v.strip()}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-"))
        resource = f"/{self.account}{raw_path}" + "".join(
            f"\n{name.lower()}:{','.join(sorted(v))}" for name, v in sorted(query.items(), key=lambda i: i[0].lower()))
        string_to_sign = handler.command + "\n" + "\n".join(values) + "\n" + canonical_headers + resource
        expected = base64.b64encode(hmac.new(base64.b64decode(self.key), string_to_sign.encode(),
                                             hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            raise _Refused(403, "AuthenticationFailed", "Server failed to authenticate the request: the signature "
                                                        "does not match the string to sign.")

    def _listing(self, share: str, directory: str, query: dict[str, list[str]]) -> str:
        prefix = directory + "/" if directory else ""
        with self._lock:
            paths = [(p, c, m) for (s, p), (c, m) in self.files.items() if s == share]
        if directory and not any(p.startswith(prefix) for p, _, _ in paths):
            raise _Refused(404, "ResourceNotFound", "The specified resource does not exist.")
        files: dict[str, tuple[bytes, datetime]] = {}
        folders: set[str] = set()
        for path, content, modified in paths:
            if not path.startswith(prefix):
                continue
            head, sep, _ = path[len(prefix):].partition("/")
            if sep:
                folders.add(head)
            else:
                files[head] = (content, modified)
        timestamps = "timestamps" in ",".join(query.get("include", [])).lower()
        entries = []
        for name in sorted(folders | set(files)):
            if name in folders:
                entries.append(f"<Directory><Name>{escape(name)}</Name><Properties /></Directory>")
                continue
            content, modified = files[name]
            times = (f"<CreationTime>{modified.strftime('%Y-%m-%dT%H:%M:%S.0000000Z')}</CreationTime>"
                     f"<LastWriteTime>{modified.strftime('%Y-%m-%dT%H:%M:%S.0000000Z')}</LastWriteTime>"
                     f"<Last-Modified>{format_datetime(modified, usegmt=True)}</Last-Modified>") if timestamps else ""
            entries.append(f"<File><Name>{escape(name)}</Name><Properties><Content-Length>{len(content)}"
                           f"</Content-Length>{times}</Properties></File>")
        return (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint={quoteattr(self.endpoint + "/")}'
                f" ShareName={quoteattr(share)} DirectoryPath={quoteattr(directory)}><Entries>{''.join(entries)}"
                "</Entries><NextMarker /></EnumerationResults>")

    def _sas_get(self, raw_path: str, share: str, path: str, query: dict[str, list[str]]
                 ) -> tuple[int, bytes, str]:
        fields = {k: v[-1] for k, v in query.items()}
        if fields.get("sr") != "f" or "r" not in fields.get("sp", ""):
            raise _Refused(403, "AuthorizationPermissionMismatch", "The SAS does not give read access to a file.")
        try:
            expiry = datetime.strptime(fields.get("se", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise _Refused(403, "AuthenticationFailed", "The SAS has no valid expiry (se).") from None
        if expiry <= datetime.now(UTC):
            raise _Refused(403, "AuthenticationFailed", "Signed expiry time has to be after signed start time.")
        expected = parse_qs(generate_file_sas(self.account, share, path.split("/"), account_key=self.key,
                                              permission=fields["sp"], expiry=fields["se"]))["sig"][-1]
        if not hmac.compare_digest(expected, fields.get("sig", "")):
            raise _Refused(403, "AuthenticationFailed", "Signature did not match.")
        with self._lock:
            found = self.files.get((share, path))
        if found is None:
            raise _Refused(404, "ResourceNotFound", "The specified resource does not exist.")
        return 200, found[0], "application/octet-stream"


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
