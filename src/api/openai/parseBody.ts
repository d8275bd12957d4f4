import type { z } from "zod";
import { InvalidRequestError } from "../../core/errors.js";

/** `messages[0].content` style, as OpenAI writes `param`. */
export function formatParamPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

type Issue = z.core.$ZodIssue;

/** For a union, report the branch that got furthest (`stop[0]`, not just `stop`). */
function deepestIssue(issue: Issue): Issue {
  if (issue.code !== "invalid_union" || issue.errors.length === 0) return issue;
  let best: Issue | null = null;
  for (const branch of issue.errors) {
    for (const inner of branch) {
      const candidate = deepestIssue({ ...inner, path: [...issue.path, ...inner.path] } as Issue);
      if (!best || candidate.path.length > best.path.length) best = candidate;
    }
  }
  return best && best.path.length > issue.path.length ? best : issue;
}

/** Validates a wire body; the first problem becomes a 400 naming the parameter. No coercion happens here. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new InvalidRequestError("The request body must be a JSON object.", { code: "invalid_body" });
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = deepestIssue(result.error.issues[0]!);
  const param = formatParamPath(issue.path);
  const message = param ? `Invalid value for '${param}': ${issue.message}` : issue.message;
  throw new InvalidRequestError(message, { param: param || null, code: issue.code === "invalid_type" && issue.input === undefined ? "missing_required_parameter" : "invalid_value" });
}
