// A typed use of the generated types: tsc --noEmit fails if the document
// stops describing what a browser app needs (submit, poll, problems).
import type { components, paths } from "./generated/api";

type JobView = components["schemas"]["JobView"];
type SubmitBody = paths["/jobs"]["post"]["requestBody"]["content"]["application/json"];
type Accepted = paths["/jobs"]["post"]["responses"]["202"]["content"]["application/json"];
type Refused = paths["/jobs"]["post"]["responses"]["422"]["content"]["application/problem+json"];

const body: SubmitBody = {
  type: "report",
  input: { source: { key: "inputs/alice/sales.csv" }, group_by: ["region"], values: ["amount"] },
};

export async function submit(api: string, token: string): Promise<JobView> {
  const answer = await fetch(`${api}/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (answer.status === 422) {
    const problem = (await answer.json()) as Refused;
    const kind: "urn:longrun:problem:invalid-job" | "urn:longrun:problem:idempotency-key-reused" = problem.type;
    throw new Error(`${kind}: ${problem.errors?.map((e) => e.field).join(", ")}`);
  }
  const job: Accepted = await answer.json();
  return job;
}

export function done(job: JobView): boolean {
  return ["SUCCEEDED", "FAILED", "CANCELLED", "DEAD_LETTERED"].includes(job.status);
}
