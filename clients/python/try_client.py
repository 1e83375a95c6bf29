"""A caller's first minutes with the generated Python client.

Submits a `sleep` job through `longrun_client` (generated from
docs/openapi.yaml by `make test`: infra/scripts/clients.sh), waits for it
with long polls, downloads its result, and checks that a refused request
comes back as its typed problem. Usage: try_client.py API_URL TOKEN
"""

import sys
import time

import httpx

from longrun_client import AuthenticatedClient
from longrun_client.api.jobs import get_job, submit_job
from longrun_client.models import (
    InvalidJobProblem,
    JobStatus,
    JobView,
    SleepInput,
    SleepJobRequest,
)


def main(api: str, token: str) -> None:
    client = AuthenticatedClient(base_url=api, token=token)
    job = submit_job.sync(client=client, body=SleepJobRequest(type_="sleep", input_=SleepInput(seconds=1)))
    assert isinstance(job, JobView), f"submit answered {job!r}"
    print(f"submitted {job.id}: {job.status}")

    deadline = time.monotonic() + 60
    while job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        assert time.monotonic() < deadline, f"still {job.status} after 60 s"
        job = get_job.sync(job.id, client=client, wait=5)
        assert isinstance(job, JobView), f"get answered {job!r}"
        print(f"  {job.status} {job.progress}%")
    assert job.status == JobStatus.SUCCEEDED, f"ended {job.status}: {job.error}"

    result = httpx.get(job.result_url, timeout=30)
    result.raise_for_status()
    print(f"result {job.results[0].name}: {len(result.content)} bytes: {result.text[:80]}")
    assert result.content, "an empty result"

    refused = submit_job.sync_detailed(client=client, body=SleepJobRequest(type_="sleep", input_=SleepInput(seconds=-1)))
    assert refused.status_code == 422, refused
    assert isinstance(refused.parsed, InvalidJobProblem), f"not typed: {refused.parsed!r}"
    print(f"refused as typed: {refused.parsed.type_} ({refused.parsed.errors[0].field})")
    print("the generated client works")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
