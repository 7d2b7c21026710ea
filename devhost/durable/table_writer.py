"""The engine's hot writes to the task hub tables, straight over the Table service's REST API.

Every episode commits with a history transaction and a conditional replace of the instance row,
and every activity result is a message upsert. Through ``azure-data-tables`` each of these costs
about 1.2 ms of the host's CPU, and a transaction 3-4 ms (azure-core builds and parses the
multipart body with the ``email`` package), which made the task hub's writes the host process's
largest cost under load (``bench/profile_engine.py``). The Durable extension does these writes
from .NET, off the Python worker's GIL; here the engine shares a process with the HTTP front end,
so it does them as plainly as the protocol allows, on one aiohttp session.

What is sent is what the SDK sends, so rows are byte-for-byte the same:
- entity bodies from the SDK's own serialiser (``azure.data.tables._serialize._add_entity_properties``:
  the same Edm types and ``@odata.type`` annotations);
- SharedKey authorisation as ``azure.data.tables._authentication.SharedKeyCredentialPolicy`` signs
  it (verb, Content-MD5, Content-Type, x-ms-date, ``/account/path``), with the SDK's
  ``x-ms-version: 2019-02-02`` and ``DataServiceVersion: 3.0``;
- entity group transactions in the ``$batch`` multipart format of "Performing entity group
  transactions" (Table service REST API): one changeset, ``PUT`` for an upsert that replaces,
  ``MERGE`` for one that merges, ``DELETE`` with ``If-Match: *``. A failed changeset's status
  line decides the error, as the SDK's ``TableTransactionError`` does.

Errors are the SDK's exception types (``ResourceModifiedError`` for 412, ``ResourceExistsError``
for 409, ``ResourceNotFoundError`` for 404, ``HttpResponseError`` otherwise), so the engine
handles them as before. Connection failures and 5xx answers are retried a few times, as the
SDK's retry policy does; anything else propagates and the engine redoes the episode from storage.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from typing import Any, NoReturn
from urllib.parse import quote, urlparse

import aiohttp
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables._serialize import _add_entity_properties
from yarl import URL

VERSION = "2019-02-02"  # what azure-data-tables sends (x-ms-version)
RETRIES = (0.05, 0.2, 0.8)  # connection trouble and 5xx, as TablesRetryPolicy retries them
Operation = tuple[str, Mapping[str, Any]]  # ("upsert-replace" | "upsert-merge" | "delete", entity)
_VERBS = {"upsert-replace": "PUT", "upsert-merge": "MERGE", "delete": "DELETE"}


def parse_connection_string(text: str) -> tuple[str, str, bytes]:
    """(table endpoint, account name, account key) of a storage connection string."""
    parts = dict(p.split("=", 1) for p in text.split(";") if "=" in p)
    name, key = parts["AccountName"], parts["AccountKey"]
    endpoint = parts.get("TableEndpoint") or (
        f"{parts.get('DefaultEndpointsProtocol', 'https')}://{name}.table."
        f"{parts.get('EndpointSuffix', 'core.windows.net')}"
    )
    return endpoint.rstrip("/"), name, base64.b64decode(key)


def _key(value: str) -> str:
    """A key inside ``Table(PartitionKey='…',RowKey='…')``: quotes doubled, then URL-encoded."""
    return quote(value.replace("'", "''"), safe="")


def _entity_path(table: str, partition_key: str, row_key: str) -> str:
    return f"{table}(PartitionKey='{_key(partition_key)}',RowKey='{_key(row_key)}')"


class TableWriter:
    """Upserts, conditional replaces, inserts and transactions on one storage account's tables."""

    def __init__(self, connection_string: str) -> None:
        self.endpoint, self.account, self._key = parse_connection_string(connection_string)
        self._base_path = urlparse(self.endpoint).path.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # trust_env=False: no proxy or ~/.netrc lookup per request (a loopback emulator or a
            # storage account never needs one, and a .netrc entry would replace SharedKey).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30), trust_env=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, verb: str, path: str, content_type: str = "", **extra: str) -> dict[str, str]:
        date = formatdate(usegmt=True)
        resource = f"/{self.account}{self._base_path}/{path.split('?', 1)[0]}"
        to_sign = f"{verb}\n\n{content_type}\n{date}\n{resource}"
        signature = base64.b64encode(hmac.new(self._key, to_sign.encode(), hashlib.sha256).digest()).decode()
        headers = {
            "x-ms-date": date,
            "x-ms-version": VERSION,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Accept": "application/json;odata=minimalmetadata",
            "Authorization": f"SharedKey {self.account}:{signature}",
            **extra,
        }
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def _send(
        self, verb: str, path: str, body: bytes, content_type: str = "", **extra: str
    ) -> tuple[int, Mapping[str, str], bytes]:
        # Sent as encoded here, so that the path the service sees is the path that was signed.
        url = URL(f"{self.endpoint}/{path}", encoded=True)
        for attempt in range(len(RETRIES) + 1):
            headers = self._headers(verb, path, content_type, **extra)
            try:
                async with self._http().request(verb, url, data=body or None, headers=headers) as r:
                    data = await r.read()
                    if r.status < 500 or attempt == len(RETRIES):
                        return r.status, r.headers, data
            except (TimeoutError, aiohttp.ClientConnectionError):
                if attempt == len(RETRIES):
                    raise
            await asyncio.sleep(RETRIES[attempt])
        raise AssertionError("unreachable")

    # -- single entities ----------------------------------------------------------------------
    async def upsert(self, table: str, entity: Mapping[str, Any]) -> str:
        """Insert or replace; the new ETag."""
        return await self._put(table, entity)

    async def replace(self, table: str, entity: Mapping[str, Any], etag: str) -> str:
        """Replace only if the row still has ``etag`` (``ResourceModifiedError`` if not)."""
        return await self._put(table, entity, **{"If-Match": etag})

    async def _put(self, table: str, entity: Mapping[str, Any], **extra: str) -> str:
        status, headers, data = await self._send(
            "PUT",
            _entity_path(table, entity["PartitionKey"], entity["RowKey"]),
            json.dumps(_add_entity_properties(entity)).encode(),
            "application/json",
            **extra,
        )
        return _etag_or_raise(status, headers, data)

    async def insert(self, table: str, entity: Mapping[str, Any]) -> str:
        """Insert (``ResourceExistsError`` if the row exists); its ETag."""
        status, headers, data = await self._send(
            "POST",
            table,
            json.dumps(_add_entity_properties(entity)).encode(),
            "application/json",
            Prefer="return-no-content",
        )
        return _etag_or_raise(status, headers, data)

    # -- entity group transactions ------------------------------------------------------------
    async def transaction(self, table: str, operations: Iterable[Operation]) -> None:
        """All or nothing, in one partition (at most 100 operations: the caller chunks)."""
        ops = list(operations)
        if not ops:
            return
        batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
        parts = []
        for n, (kind, entity) in enumerate(ops):
            verb = _VERBS[kind]
            url = f"{self.endpoint}/{_entity_path(table, entity['PartitionKey'], entity['RowKey'])}"
            head = [
                f"--{changeset}",
                "Content-Type: application/http",
                "Content-Transfer-Encoding: binary",
                "",
                f"{verb} {url} HTTP/1.1",
                f"Content-ID: {n}",
                "Accept: application/json;odata=minimalmetadata",
                "DataServiceVersion: 3.0",
            ]
            if kind == "delete":
                parts.append("\r\n".join([*head, "If-Match: *", "", ""]))
            else:
                body = json.dumps(_add_entity_properties(entity))
                parts.append("\r\n".join([*head, "Content-Type: application/json", "", body]))
        text = "\r\n".join(
            [
                f"--{batch}",
                f"Content-Type: multipart/mixed; boundary={changeset}",
                "",
                *parts,
                f"--{changeset}--",
                f"--{batch}--",
                "",
            ]
        )
        status, _headers, data = await self._send(
            "POST", "$batch", text.encode(), f"multipart/mixed; boundary={batch}"
        )
        if status != 202:
            _raise(status, data)
        failed = _failed_status(data)
        if failed is not None:
            _raise(failed, data)


def _failed_status(body: bytes) -> int | None:
    """The first non-2xx status line among the changeset's responses (the service answers a
    failed changeset with the one failing operation's response)."""
    for line in body.split(b"\n"):
        if line.startswith(b"HTTP/1.1 "):
            status = int(line.split()[1])
            if status >= 300:
                return status
    return None


def _etag_or_raise(status: int, headers: Mapping[str, str], data: bytes) -> str:
    if 200 <= status < 300:
        return str(headers.get("ETag", ""))
    _raise(status, data)


def _raise(status: int, data: bytes) -> NoReturn:
    message = data.decode("utf-8", "replace")[:500]
    if status == 412:
        raise ResourceModifiedError(message)
    if status == 409:
        raise ResourceExistsError(message)
    if status == 404:
        raise ResourceNotFoundError(message)
    error = HttpResponseError(f"Table service answered {status}: {message}")
    error.status_code = status
    raise error
