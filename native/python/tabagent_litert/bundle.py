"""What the engine reads from a bundle besides what LiteRT-LM loads itself: the LlmMetadata (chat template, start and
stop tokens, context size). Nothing is ever extracted: a .litertlm section and a .task entry are read in place, and
a bundle whose shape is wrong is refused with the reason before the runtime sees it."""
import os
import struct
import zipfile

LITERTLM_MAGIC = b"LITERTLM"
HEADER_BEGIN = 32
HEADER_END_AT = 24
MAX_HEADER = 16 * 1024 * 1024
MAX_METADATA = 16 * 1024 * 1024
LLM_METADATA_PROTO = 5  # AnySectionDataType.LlmMetadataProto


class RefusedModel(Exception):
    """A bundle this engine will not load; serve.run reports its message as the load failure."""


def _llm_metadata(data):
    from litert_lm_builder.runtime.proto import llm_metadata_pb2

    meta = llm_metadata_pb2.LlmMetadata()
    try:
        meta.ParseFromString(data)
    except Exception as err:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise RefusedModel(f"its LlmMetadata is not a valid protocol buffer ({err})") from None
    return meta


def _litertlm_metadata(path, size):
    from litert_lm_builder import litertlm_header_schema_py_generated as schema

    with open(path, "rb") as f:
        if f.read(8) != LITERTLM_MAGIC:
            raise RefusedModel("it is not a .litertlm file (no LITERTLM magic)")
        f.seek(HEADER_END_AT)
        raw = f.read(8)
        if len(raw) != 8:
            raise RefusedModel("the .litertlm header is truncated")
        end = struct.unpack("<Q", raw)[0]
        if end <= HEADER_BEGIN or end - HEADER_BEGIN > MAX_HEADER or end > size:
            raise RefusedModel(f"the .litertlm header ends at byte {end}, outside the file ({size} bytes)")
        f.seek(HEADER_BEGIN)
        header = f.read(end - HEADER_BEGIN)
        try:
            sections = schema.LiteRTLMMetaData.GetRootAs(header, 0).SectionMetadata()
            objects = [sections.Objects(i) for i in range(sections.ObjectsLength())] if sections else []
            spans = [(o.DataType(), o.BeginOffset(), o.EndOffset()) for o in objects]
        except Exception as err:  # noqa: BLE001 - a corrupt flatbuffer raises anything from struct.error to IndexError
            raise RefusedModel(f"the .litertlm header is corrupt ({type(err).__name__})") from None
        for kind, begin, stop in spans:
            if not 0 <= begin <= stop <= size:
                raise RefusedModel(f"a .litertlm section spans bytes {begin}-{stop}, outside the file ({size} bytes): truncated?")
        llm = [(b, e) for k, b, e in spans if k == LLM_METADATA_PROTO]
        if not llm:
            raise RefusedModel("the .litertlm file has no LlmMetadata section: not a language model bundle")
        begin, stop = llm[0]
        if stop - begin > MAX_METADATA:
            raise RefusedModel("its LlmMetadata section is larger than 16 MiB")
        f.seek(begin)
        return _llm_metadata(f.read(stop - begin))


def _task_metadata(path):
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            for info in infos:
                name = info.filename
                # MediaPipe and LiteRT-LM map entries in place; a name that would land elsewhere when extracted
                # marks a crafted archive, refused whole.
                if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or ":" in name:
                    raise RefusedModel(f"the .task archive has an entry named {name!r}, which points outside it")
                if info.compress_type != zipfile.ZIP_STORED:
                    raise RefusedModel(f"the .task entry {name} is compressed; LiteRT reads .task entries only stored")
            names = {i.filename for i in infos}
            if "TF_LITE_PREFILL_DECODE" not in names:
                raise RefusedModel(
                    "the .task bundle has no TF_LITE_PREFILL_DECODE model: it is not an LLM bundle (MediaPipe's other "
                    f"tasks are not served here); entries: {', '.join(sorted(names)[:8])}"
                )
            if "METADATA" not in names:
                raise RefusedModel("the .task bundle has no METADATA entry")
            info = z.getinfo("METADATA")
            if info.file_size > MAX_METADATA:
                raise RefusedModel("its METADATA entry is larger than 16 MiB")
            return _llm_metadata(z.read("METADATA"))
    except zipfile.BadZipFile as err:
        raise RefusedModel(f"the .task file is not a valid ZIP archive ({err}): truncated or corrupt?") from None


def read_bundle(path):
    """(kind, LlmMetadata) for a .litertlm or .task file; RefusedModel with the reason otherwise."""
    try:
        size = os.path.getsize(path)
    except OSError as err:
        raise RefusedModel(f"cannot read {path}: {err.strerror}") from None
    with open(path, "rb") as f:
        head = f.read(8)
    if head == LITERTLM_MAGIC:
        return "litertlm", _litertlm_metadata(path, size)
    if head[:4] == b"PK\x03\x04":
        return "task", _task_metadata(path)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        raise RefusedModel(
            "a bare .tflite model has no tokenizer or metadata; LiteRT-LM runs language models from a .litertlm bundle "
            "(write one with litert-lm-builder or litert-torch) or an LLM .task bundle"
        )
    raise RefusedModel("it is neither a .litertlm bundle nor a .task archive")


def token_text(engine, union):
    """A TokenUnion of the metadata (a string, or ids) as text, '' when unset."""
    if union.HasField("token_str"):
        return union.token_str
    if union.HasField("token_ids") and union.token_ids.ids:
        return engine.detokenize(list(union.token_ids.ids))
    return ""

