/** A Hugging Face model named on the command line or in config: `owner/name[@revision][:path/in/repo]`. */
interface HubSource {
  /** `owner/name`. */
  repo: string;
  /** Branch, tag or commit; `main` when not given. */
  revision: string;
  /** One file inside the repo (`model-Q4_K_M.gguf`), or null for the whole repo. */
  file: string | null;
}

export const DEFAULT_HUB_REVISION = "main";

// The hub's own rules for each half of a repo id (huggingface_hub `validate_repo_id`), ASCII only.
const NAME_PART = /^[A-Za-z0-9_.-]{1,96}$/;
// Git ref names as the hub accepts them: branches, tags (`v1.0`), `refs/pr/1`, commit hashes.
const REVISION = /^[A-Za-z0-9_.\-/]{1,255}$/;
const MAX_FILE_PATH = 1000;

function isValidNamePart(part: string): boolean {
  return NAME_PART.test(part) && !part.includes("..") && !part.includes("--") && !/^[-.]|[-.]$/.test(part) && !part.endsWith(".git");
}

function isValidRevision(rev: string): boolean {
  return REVISION.test(rev) && !rev.includes("..") && !rev.includes("//") && !/^[-./]|[./]$/.test(rev) && !rev.endsWith(".lock");
}

function isValidFilePath(file: string): boolean {
  if (file.length === 0 || file.length > MAX_FILE_PATH) return false;
  // Control characters and backslashes never occur in repo paths; `.`/`..`/empty segments would escape or alias.
  if (/[\u0000-\u001f\u007f\\]/.test(file)) return false;
  return file.split("/").every((seg) => seg !== "" && seg !== "." && seg !== "..");
}

/**
 * Parses `owner/name`, `owner/name@revision`, `owner/name:path/in/repo.gguf` and `owner/name@revision:path`.
 * Owner and name cannot contain `@` or `:`, and revisions cannot contain `:` (git forbids it), so the first `@`
 * starts the revision and the first `:` after it starts the file path (which may itself contain `@` or `:`).
 * Returns null for anything else: URLs, absolute or `./` paths, single-segment names (`gpt2`), bad characters.
 */
export function parseHubSource(text: string): HubSource | null {
  const m = /^([^/@:]+)\/([^/@:]+)(?:@([^:]*))?(?::(.*))?$/s.exec(text);
  if (!m) return null;
  const [, owner = "", name = "", revision, file] = m;
  if (!isValidNamePart(owner) || !isValidNamePart(name)) return null;
  if (revision !== undefined && !isValidRevision(revision)) return null;
  if (file !== undefined && !isValidFilePath(file)) return null;
  return { repo: `${owner}/${name}`, revision: revision ?? DEFAULT_HUB_REVISION, file: file ?? null };
}

/**
 * Whether `text` should be read as a hub repo rather than a local path. `owner/name` is also a valid relative
 * path, so callers must check the local file system first: a path that exists always wins, and only a source
 * that does not exist locally is tried on the hub. Users force a local path with `./owner/name` (or any path
 * starting with `/`, `./`, `../` or `~`), which this never accepts.
 */
export function looksLikeHubSource(text: string): boolean {
  if (/^(\.{1,2}\/|\/|~)/.test(text)) return false;
  return parseHubSource(text) !== null;
}
