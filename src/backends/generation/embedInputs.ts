import { InvalidRequestError } from "../../core/errors.js";
import type { EmbedRequest } from "../../core/types.js";

/** The wire parameter of input `i` (token `j` of it): `input[i]`, `input[i][j]`, or `input[j]` for one flat id array. */
export function inputParam(request: Pick<EmbedRequest, "flatTokenInput">, i: number, j?: number): string {
  if (j === undefined) return request.flatTokenInput ? "input" : `input[${i}]`;
  return request.flatTokenInput ? `input[${j}]` : `input[${i}][${j}]`;
}

/** Token ids given as input must be in the model's vocabulary: a 400 naming the first one that is not. */
export function checkTokenIds(request: Pick<EmbedRequest, "flatTokenInput">, i: number, ids: readonly number[], vocabSize: number): void {
  if (ids.length === 0)
    throw new InvalidRequestError(`'${inputParam(request, i)}' is an empty list of token ids.`, { param: inputParam(request, i), code: "invalid_value" });
  const j = ids.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (j >= 0) {
    const param = inputParam(request, i, j);
    throw new InvalidRequestError(`Invalid value for '${param}': token id ${ids[j]} is outside this model's vocabulary (0 to ${vocabSize - 1}).`, {
      param,
      code: "invalid_value",
    });
  }
}
