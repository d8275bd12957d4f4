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
      const candidate = deepestIssue({ ...inner, path: [...issue.path, ...inner.path] });
      if (!best || candidate.path.length > best.path.length) best = candidate;
    }
  }
  return best && best.path.length > issue.path.length ? best : issue;
}

/** Whether the body has nothing at `path` (the key is absent or undefined), as opposed to a value of the wrong kind. */
function isMissing(body: unknown, path: readonly PropertyKey[]): boolean {
  let at: unknown = body;
  for (const part of path) {
    if (at === null || typeof at !== "object" || !Object.hasOwn(at, part)) return true;
    at = (at as Record<PropertyKey, unknown>)[part];
  }
  return at === undefined;
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
  // Zod leaves `issue.input` out unless asked to, so whether the value is missing is read from the body itself.
  if (param && isMissing(body, issue.path)) {
    throw new InvalidRequestError(`Missing required parameter: '${param}'.`, { param, code: "missing_required_parameter" });
  }
  const message = param ? `Invalid value for '${param}': ${issue.message}` : issue.message;
  throw new InvalidRequestError(message, { param: param || null, code: "invalid_value" });
}
