import { z } from "zod";
import { InvalidRequestError } from "../../core/errors.js";
import type { ResponseFormat, ToolChoice, ToolDefinition } from "../../core/types.js";

/** OpenAI's rule for function names. */
const functionName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1–64 letters, digits, underscores or dashes");
/** A JSON Schema object; its keywords are the engine's to judge (a constrained engine names what it cannot do). */
const jsonSchemaObject = z.record(z.string(), z.unknown());

export const toolSchema = z.object({
  type: z.literal("function"),
  function: z.object({
    name: functionName,
    description: z
      .string()
      .max(16 * 1024)
      .optional(),
    parameters: jsonSchemaObject.optional(),
    strict: z.boolean().nullable().optional(),
  }),
});

export const toolChoiceSchema = z.union([z.enum(["none", "auto", "required"]), z.object({ type: z.literal("function"), function: z.object({ name: functionName }) })]);

export const toolCallSchema = z.object({
  id: z.string().min(1).max(256),
  type: z.literal("function"),
  function: z.object({ name: functionName, arguments: z.string() }),
});

export const responseFormatSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text") }),
  z.object({ type: z.literal("json_object") }),
  z.object({
    type: z.literal("json_schema"),
    json_schema: z.object({
      name: functionName,
      description: z.string().optional(),
      schema: jsonSchemaObject.optional(),
      strict: z.boolean().nullable().optional(),
    }),
  }),
]);

type WireTool = z.infer<typeof toolSchema>;
type WireToolChoice = z.infer<typeof toolChoiceSchema>;

/** Tools and the choice among them, checked together: a named choice must name a declared tool. */
export function toTools(tools: readonly WireTool[] | null | undefined, choice: WireToolChoice | null | undefined): { tools: ToolDefinition[]; toolChoice: ToolChoice } {
  const defs: ToolDefinition[] = (tools ?? []).map((t) => ({
    name: t.function.name,
    ...(t.function.description !== undefined ? { description: t.function.description } : {}),
    parameters: t.function.parameters ?? { type: "object", properties: {} },
    strict: t.function.strict === true,
  }));
  const seen = new Set<string>();
  defs.forEach((d, i) => {
    if (seen.has(d.name)) throw new InvalidRequestError(`Tool name '${d.name}' appears twice in 'tools'.`, { param: `tools[${i}].function.name`, code: "invalid_value" });
    seen.add(d.name);
  });
  let toolChoice: ToolChoice;
  if (choice == null) toolChoice = { type: defs.length > 0 ? "auto" : "none" };
  else if (typeof choice === "string") toolChoice = { type: choice };
  else toolChoice = { type: "function", name: choice.function.name };
  if ((toolChoice.type === "required" || toolChoice.type === "function") && defs.length === 0) {
    throw new InvalidRequestError(`'tool_choice' asks for a tool call, but 'tools' is empty.`, { param: "tool_choice", code: "invalid_value" });
  }
  if (toolChoice.type === "function" && !seen.has(toolChoice.name)) {
    throw new InvalidRequestError(`'tool_choice' names the function '${toolChoice.name}', which is not in 'tools'.`, { param: "tool_choice", code: "invalid_value" });
  }
  return { tools: defs, toolChoice };
}

export function toResponseFormat(format: z.infer<typeof responseFormatSchema> | null | undefined): ResponseFormat {
  if (!format || format.type === "text") return { type: "text" };
  if (format.type === "json_object") return { type: "json_object" };
  const s = format.json_schema;
  return { type: "json_schema", name: s.name, schema: s.schema ?? {}, strict: s.strict === true };
}
