import type { RemoteSource } from "./detectSource.js";
import { DEFAULT_HUB_URL, HubModelFileSystem } from "./hub/HubModelFileSystem.js";
import { looksLikeHubSource, parseHubSource } from "./hub/parseHubSource.js";

interface HubAccess {
  /** Default https://huggingface.co (`HF_ENDPOINT`, as Python's huggingface_hub reads it). */
  hubUrl?: string;
  /** `HF_TOKEN`: for gated and private repos. */
  token?: string;
  fetch?: typeof fetch;
}

/** Hub settings from the environment, the variables Hugging Face's own tools use. */
export function hubAccessFromEnv(env: NodeJS.ProcessEnv): HubAccess {
  return { hubUrl: env.HF_ENDPOINT || DEFAULT_HUB_URL, token: env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined };
}

/** Opens `owner/name[@rev][:file]` as a remote model; null for anything that is not a repo id. */
export function hubOpener(access: HubAccess) {
  return async (source: string): Promise<RemoteSource | null> => {
    if (!looksLikeHubSource(source)) return null;
    const parsed = parseHubSource(source)!;
    const fs = new HubModelFileSystem({
      repo: parsed.repo,
      revision: parsed.revision,
      hubUrl: access.hubUrl,
      accessToken: access.token,
      fetch: access.fetch,
    });
    return { fs, file: parsed.file };
  };
}
