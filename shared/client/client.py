"""A typed Python client of the Batch AI 2018-05-01 API (and the event subscriptions beside it).

Answers are the service's own pydantic models (`shared.models`); request bodies may be those
models or plain wire dicts (`{"properties": ...}`), sent as they are — the service validates
them, so there is one set of rules. Lists follow `nextLink` and are iterators. Errors are
`ApiError` (the service's CloudError) or `ServiceUnreachable`. The operations mirror
azure-mgmt-batchai's groups: `client.workspaces`, `.clusters`, `.file_servers`, `.experiments`,
`.jobs`, `.event_subscriptions`; `client.by_message()` sends job creations and cluster resizes as
Service Bus messages instead (shared/client/requests_by_message.py).
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from shared.client.config import ClientConfig
from shared.client.errors import ApiError, ClientError, OutputFileNotFound, ServiceUnreachable
from shared.client.requests_by_message import REPLIES, RequestQueue
from shared.client.parsing import parse_answer
from shared.models import (
    Cluster,
    Experiment,
    File,
    FileServer,
    Job,
    RemoteLoginInformation,
    WireModel,
    Workspace,
)
from shared.models.event_subscription import DeadLetter, EventSubscription

API_VERSION = "2018-05-01"
FINAL_STATES = ("succeeded", "failed")
M = TypeVar("M", bound=BaseModel)
Body = WireModel | dict[str, Any]


def _wire(body: Body | None) -> dict[str, Any] | None:
    if isinstance(body, WireModel):
        return body.to_wire(reveal_secrets=True)  # the request carries the secrets; answers never do
    return body


def _parse(model: type[M], data: Any) -> M:
    return parse_answer(model, data)  # leniently when it must be: see shared/client/parsing.py


class _Http:
    """One httpx client, the api-version on every call, CloudErrors raised as ApiError."""

    def __init__(self, config: ClientConfig, http: httpx.Client | None = None, timeout: float = 30) -> None:
        if not config.endpoint:
            raise ServiceUnreachable("No endpoint: start `batchai local up` in this folder, set BATCHAI_ENDPOINT, "
                                     "or run `batchai configure --endpoint URL`.")
        self.config = config
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self.http = http or httpx.Client(base_url=config.endpoint.rstrip("/"), timeout=timeout, headers=headers)

    def call(self, method: str, path: str, body: Body | None = None, **params: Any) -> Any:
        query = {"api-version": API_VERSION, **{k: v for k, v in params.items() if v is not None}}
        try:
            answer = self.http.request(method, path, json=_wire(body), params=query)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"Cannot reach the service at {self.config.endpoint}: {exc}") from None
        if answer.status_code >= 400:
            raise ApiError.from_response(answer)
        return answer.json() if answer.content else None

    def pages(self, method: str, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a list, following nextLink (with GET, as ARM clients do)."""
        page = self.call(method, path, **params)
        while True:
            yield from page.get("value") or []
            link = page.get("nextLink")
            if not link:
                return
            try:
                answer = self.http.get(link)
            except httpx.TransportError as exc:
                raise ServiceUnreachable(f"Cannot reach the service at {self.config.endpoint}: {exc}") from None
            if answer.status_code >= 400:
                raise ApiError.from_response(answer)
            page = answer.json()

    def fetch(self, url: str, offset: int = 0) -> bytes:
        """A download URL's bytes from `offset` on (a Range request; b"" when there is nothing new)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            answer = httpx.get(url, headers=headers, timeout=60)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"Cannot download {url.split('?')[0]}: {exc}") from None
        if answer.status_code == 416:
            return b""
        if answer.status_code >= 400:
            raise ApiError.from_response(answer)
        return answer.content if answer.status_code == 206 or not offset else answer.content[offset:]


class _Group:
    def __init__(self, http: _Http) -> None:
        self._http = http

    @property
    def _sub(self) -> str:
        return f"/subscriptions/{self._http.config.subscription}"

    def _ws(self, group: str, workspace: str) -> str:
        return f"{self._sub}/resourceGroups/{group}/providers/Microsoft.BatchAI/workspaces/{workspace}"


class Workspaces(_Group):
    def create(self, group: str, name: str, location: str | None = None, tags: dict[str, str] | None = None
               ) -> Workspace:
        body = {"location": location or self._http.config.location, **({"tags": tags} if tags else {})}
        return _parse(Workspace, self._http.call("PUT", self._ws(group, name), body))

    def get(self, group: str, name: str) -> Workspace:
        return _parse(Workspace, self._http.call("GET", self._ws(group, name)))

    def list(self, group: str | None = None) -> Iterator[Workspace]:
        path = (f"{self._sub}/resourceGroups/{group}/providers/Microsoft.BatchAI/workspaces" if group
                else f"{self._sub}/providers/Microsoft.BatchAI/workspaces")
        return (_parse(Workspace, item) for item in self._http.pages("GET", path))

    def delete(self, group: str, name: str) -> None:
        self._http.call("DELETE", self._ws(group, name))


class _InWorkspace(_Group, Generic[M]):
    """A kind of resource that lives in a workspace: clusters, file servers, experiments, event subscriptions."""

    segment: str
    model: type[M]

    def _path(self, group: str, workspace: str, name: str = "") -> str:
        return f"{self._ws(group, workspace)}/{self.segment}" + (f"/{name}" if name else "")

    def _put(self, group: str, workspace: str, name: str, body: Body | None) -> M:
        return _parse(self.model, self._http.call("PUT", self._path(group, workspace, name), body))

    def get(self, group: str, workspace: str, name: str) -> M:
        return _parse(self.model, self._http.call("GET", self._path(group, workspace, name)))

    def list(self, group: str, workspace: str) -> Iterator[M]:
        return (_parse(self.model, item) for item in self._http.pages("GET", self._path(group, workspace)))

    def delete(self, group: str, workspace: str, name: str) -> None:
        self._http.call("DELETE", self._path(group, workspace, name))


class Clusters(_InWorkspace[Cluster]):
    segment, model = "clusters", Cluster

    def create(self, group: str, workspace: str, name: str, parameters: Body) -> Cluster:
        return self._put(group, workspace, name, parameters)

    def update(self, group: str, workspace: str, name: str, scale_settings: Body) -> Cluster:
        """PATCH the scale settings (merged into the current ones; manual ↔ autoScale replaces them)."""
        body = {"properties": {"scaleSettings": _wire(scale_settings)}}
        return _parse(Cluster, self._http.call("PATCH", self._path(group, workspace, name), body))

    def list_remote_login_information(self, group: str, workspace: str, name: str
                                      ) -> Iterator[RemoteLoginInformation]:
        path = self._path(group, workspace, name) + "/listRemoteLoginInformation"
        return (_parse(RemoteLoginInformation, item) for item in self._http.pages("POST", path))


class FileServers(_InWorkspace[FileServer]):
    segment, model = "fileServers", FileServer

    def create(self, group: str, workspace: str, name: str, parameters: Body) -> FileServer:
        return self._put(group, workspace, name, parameters)


class Experiments(_InWorkspace[Experiment]):
    segment, model = "experiments", Experiment

    def create(self, group: str, workspace: str, name: str) -> Experiment:
        return self._put(group, workspace, name, None)


class Jobs(_Group):
    def _path(self, group: str, workspace: str, experiment: str, name: str = "") -> str:
        return f"{self._ws(group, workspace)}/experiments/{experiment}/jobs" + (f"/{name}" if name else "")

    def create(self, group: str, workspace: str, experiment: str, name: str, parameters: Body) -> Job:
        return _parse(Job, self._http.call("PUT", self._path(group, workspace, experiment, name), parameters))

    def get(self, group: str, workspace: str, experiment: str, name: str) -> Job:
        return _parse(Job, self._http.call("GET", self._path(group, workspace, experiment, name)))

    def list(self, group: str, workspace: str, experiment: str) -> Iterator[Job]:
        path = self._path(group, workspace, experiment)
        return (_parse(Job, item) for item in self._http.pages("GET", path))

    def delete(self, group: str, workspace: str, experiment: str, name: str) -> None:
        self._http.call("DELETE", self._path(group, workspace, experiment, name))

    def terminate(self, group: str, workspace: str, experiment: str, name: str) -> None:
        self._http.call("POST", self._path(group, workspace, experiment, name) + "/terminate")

    def list_output_files(self, group: str, workspace: str, experiment: str, name: str,
                          output_directory_id: str = "stdouterr", directory: str | None = None,
                          link_expiry_minutes: int | None = None, max_results: int | None = None) -> Iterator[File]:
        path = self._path(group, workspace, experiment, name) + "/listOutputFiles"
        items = self._http.pages("POST", path, outputdirectoryid=output_directory_id, directory=directory,
                                 linkexpiryinminutes=link_expiry_minutes, maxresults=max_results)
        return (_parse(File, item) for item in items)

    def list_remote_login_information(self, group: str, workspace: str, experiment: str, name: str
                                      ) -> Iterator[RemoteLoginInformation]:
        path = self._path(group, workspace, experiment, name) + "/listRemoteLoginInformation"
        return (_parse(RemoteLoginInformation, item) for item in self._http.pages("POST", path))

    def wait(self, group: str, workspace: str, experiment: str, name: str, *, timeout: float | None = None,
             interval: float = 1.0, on_poll: Callable[[Job], None] | None = None) -> Job:
        """Poll until the job succeeded or failed (TimeoutError after `timeout` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(group, workspace, experiment, name)
            if on_poll:
                on_poll(job)
            if state_of(job) in FINAL_STATES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"The job {name} is still {state_of(job)} after {timeout:g} s.")
            time.sleep(interval)

    def follow_file(self, group: str, workspace: str, experiment: str, name: str, file_name: str | None = None,
                    output_directory_id: str = "stdouterr", *, interval: float = 1.0,
                    timeout: float | None = None, on_poll: Callable[[Job], None] | None = None,
                    missing_ok: bool = False) -> Iterator[str]:
        """The file's text as it grows, piece by piece, until the job has ended (and the file with it).
        Without a file name, the master task's stdout (`master_log`). A file the job never made is
        `OutputFileNotFound` once the job has ended (nothing, with `missing_ok`). `on_poll` sees the
        job at every round."""
        deadline = None if timeout is None else time.monotonic() + timeout
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        offset = 0
        seen = False
        while True:
            job = self.get(group, workspace, experiment, name)
            if on_poll:
                on_poll(job)
            wanted = file_name or master_log(job)
            finished = state_of(job) in FINAL_STATES
            files = list(self.list_output_files(group, workspace, experiment, name, output_directory_id))
            entry = next((f for f in files if f.name == wanted and f.download_url), None)
            if entry is not None:
                seen = True
                data = self._http.fetch(entry.download_url or "", offset)
                offset += len(data)
                text = decoder.decode(data, final=finished)
                if text:
                    yield text
            if finished:  # read once more after the end was seen, so the last lines are never lost
                if not seen and not missing_ok:
                    there = ", ".join(sorted(f.name or "" for f in files if f.download_url)) or "no files"
                    raise OutputFileNotFound(f"File '{wanted}' not found: the job {name} ended without it in its "
                                             f"{output_directory_id} directory, which has: {there}.")
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"The job {name} did not end within {timeout:g} s.")
            time.sleep(interval)


def master_log(job: Job, stream: str = "stdout") -> str:
    """The file the job's master task writes to (reference/ENVIRONMENT.md, "Per-task log files"):
    stdout-wk-0.txt for TensorFlow, stdout-0.txt for PyTorch (but over MPI) and Caffe2, else stdout.txt."""
    props = job.properties
    if props is None:
        return f"{stream}.txt"
    if props.tensor_flow_settings is not None:
        return f"{stream}-wk-0.txt"
    pytorch = props.py_torch_settings
    if props.caffe2_settings is not None or (
            pytorch is not None and (pytorch.communication_backend or "").lower() != "mpi"):
        return f"{stream}-0.txt"
    return f"{stream}.txt"


class EventSubscriptions(_InWorkspace[EventSubscription]):
    segment, model = "eventSubscriptions", EventSubscription

    def create(self, group: str, workspace: str, name: str, parameters: Body) -> EventSubscription:
        return self._put(group, workspace, name, parameters)

    def list_dead_letters(self, group: str, workspace: str, name: str) -> Iterator[DeadLetter]:
        path = self._path(group, workspace, name) + "/deadLetters"
        return (_parse(DeadLetter, item) for item in self._http.pages("GET", path))


def state_of(job: Job) -> str:
    return str(job.properties.execution_state) if job.properties and job.properties.execution_state else "unknown"


class BatchAIClient:
    """The service at `config.endpoint` (see `shared.client.config.resolve` for where that comes from)."""

    def __init__(self, config: ClientConfig, http: httpx.Client | None = None) -> None:
        self._http = _Http(config, http)
        self.config = config
        self.workspaces = Workspaces(self._http)
        self.clusters = Clusters(self._http)
        self.file_servers = FileServers(self._http)
        self.experiments = Experiments(self._http)
        self.jobs = Jobs(self._http)
        self.event_subscriptions = EventSubscriptions(self._http)

    def by_message(self, reply_to: str = REPLIES) -> RequestQueue:
        """Requests by Service Bus message to the namespace of `config.servicebus` (Azure's, or a
        local host's door), sent as this client's principal when it has a token."""
        if not self.config.servicebus:
            raise ClientError("No Service Bus connection string: set BATCHAI_SERVICEBUS, save one with "
                              "`batchai configure --servicebus`, or start a local host in this folder.")
        return RequestQueue(self.config.servicebus, self.config.token, reply_to)

    def download(self, url: str) -> bytes:
        """The bytes behind a file's downloadUrl."""
        return self._http.fetch(url)

    def save(self, url: str, target: Path, on_bytes: Callable[[int], None] | None = None) -> int:
        """Stream a downloadUrl into `target` (written whole or not at all); returns its size."""
        partial = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        try:
            with httpx.stream("GET", url, timeout=60) as answer:
                if answer.status_code >= 400:
                    answer.read()
                    raise ApiError.from_response(answer)
                with partial.open("wb") as out:
                    for chunk in answer.iter_bytes():
                        out.write(chunk)
                        size += len(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise ServiceUnreachable(f"Cannot download {url.split('?')[0]}: {exc}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return size

    def close(self) -> None:
        self._http.http.close()

    def __enter__(self) -> BatchAIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
