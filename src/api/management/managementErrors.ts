import { InvalidRequestError, TabAgentError } from "../../core/errors.js";

/** 403s of the management API: understood, and refused (OpenAI's `permission_error`). */
class ManagementRefusal extends TabAgentError {
  override readonly status: number = 403;
  // OpenAIErrorType lacks permission_error (see server/security/errors.ts); toErrorEnvelope passes it through.
  override readonly type = "permission_error" as unknown as "server_error";
}

/** A POST or DELETE under /api while the config sets `readOnly`. */
export class ReadOnlyError extends ManagementRefusal {
  constructor() {
    super("This daemon is read-only (config readOnly: true): models cannot be pulled, loaded, unloaded or deleted over the API.", { code: "read_only" });
  }
}

/** A POST or DELETE under /api from a caller the daemon cannot trust: no keys, listening beyond loopback. */
export class ManagementForbiddenError extends ManagementRefusal {
  constructor() {
    super(
      "Managing models needs an API key: this daemon listens beyond loopback without one (--insecure-no-auth). Configure apiKeys, or call it on a loopback-only daemon.",
      { code: "management_forbidden" },
    );
  }
}

/** DELETE of a model the daemon did not pull into its store. */
export class NotRemovableError extends ManagementRefusal {
  constructor(id: string, from: string) {
    super(`The model '${id}' was not pulled into the store: it comes from ${from}, and tabagent deletes only models it keeps in the store.`, {
      code: "not_removable",
    });
  }
}

/** Unload or delete while requests run on (or wait for) the model. */
export class ModelBusyError extends TabAgentError {
  override readonly status = 409;
  override readonly type = "invalid_request_error" as const;
  constructor(id: string, running: number, queued: number) {
    super(`The model '${id}' is in use (${running} running, ${queued} queued); retry once they are done (GET /api/ps shows them).`, {
      code: "model_busy",
    });
  }
}

/** Load or unload of a model served by an upstream server. */
export class ModelNotLocalError extends InvalidRequestError {
  constructor(id: string) {
    super(`The model '${id}' is served by an upstream server, which loads and unloads its models itself.`, { code: "model_not_local" });
  }
}
