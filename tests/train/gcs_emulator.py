"""The GCS emulator the gs:// checkpoint tests run against: gcp-storage-emulator, in memory, with the
bucket `bucket`, plus the two things of real GCS that tensorstore relies on and the emulator lacks:

- a media download carries the object's generation in `x-goog-generation` (tensorstore reads it
  back, and conditions its next write of the OCDBT manifest on it: without it that write fails
  with "Malformed StorageGeneration");
- the conditions `ifGenerationMatch` (downloads and uploads; 412 when they fail) and
  `ifGenerationNotMatch` (downloads; 304 Not Modified).

    python gcs_emulator.py --port P [--host 127.0.0.1]

Run by test_gcs_checkpoints.py; not collected by pytest (its name does not start with test_).
Everything else is the emulator's own, including what it does not implement (the `moveTo` call
gcsfs renames with answers 501), which the tests check that no checkpoint save uses.
"""

from __future__ import annotations

import argparse
from http import HTTPStatus

from gcp_storage_emulator import server
from gcp_storage_emulator.__main__ import main as emulator_main
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

_download, _insert = objects.download, objects.insert


def _param(request, key: str) -> str | None:
    values = request.query.get(key)
    return values[0] if values else None


def _generation(storage, bucket: str, name: str | None) -> str:
    """The object's generation, "0" when it does not exist (GCS's convention for conditions)."""
    if not name:
        return "0"
    try:
        return str(storage.get_file_obj(bucket, name)["generation"])
    except NotFound:
        return "0"


def download(request, response, storage, *args, **kwargs):
    generation = _generation(storage, request.params["bucket_name"], request.params["object_id"])
    if generation != "0":
        if _param(request, "ifGenerationNotMatch") == generation:
            response.status = HTTPStatus.NOT_MODIFIED
            return None
        match = _param(request, "ifGenerationMatch")
        if match is not None and match != generation:
            response.status = HTTPStatus.PRECONDITION_FAILED
            return None
        response["x-goog-generation"] = generation
    return _download(request, response, storage, *args, **kwargs)


def insert(request, response, storage, *args, **kwargs):
    match = _param(request, "ifGenerationMatch")
    if match is not None and match != _generation(storage, request.params["bucket_name"], _param(request, "name")):
        response.status = HTTPStatus.PRECONDITION_FAILED
        return None
    return _insert(request, response, storage, *args, **kwargs)


def patch_emulator() -> None:
    objects.download, objects.insert = download, insert  # objects.get serves alt=media through objects.download
    swap = {_download: download, _insert: insert}
    server.HANDLERS = tuple((regex, {method: swap.get(fn, fn) for method, fn in handlers.items()})
                            for regex, handlers in server.HANDLERS)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    patch_emulator()
    emulator_main(["start", f"--host={a.host}", f"--port={a.port}", "--in-memory", "--default-bucket=bucket"])


if __name__ == "__main__":
    main()
