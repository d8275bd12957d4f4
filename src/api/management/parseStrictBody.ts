import type { z } from "zod";
import { InvalidRequestError } from "../../core/errors.js";
import { parseBody } from "../openai/parseBody.js";

/**
 * A management body: the schema's fields only. Unlike the OpenAI routes (which pass unknown fields on to upstream
 * servers), nothing here could use another field, so one is refused by name rather than ignored.
 */
export function parseStrictBody<S extends z.ZodObject>(schema: S, body: unknown): z.infer<S> {
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    const unknown = Object.keys(body).find((k) => !Object.hasOwn(schema.shape, k));
    if (unknown !== undefined) {
      const known = Object.keys(schema.shape);
      throw new InvalidRequestError(
        `Unknown parameter '${unknown}'${known.length ? `; this route takes ${known.map((k) => `'${k}'`).join(", ")}` : "; this route takes no body"}.`,
        {
          param: unknown,
          code: "unknown_parameter",
        },
      );
    }
  }
  return parseBody(schema, body);
}
