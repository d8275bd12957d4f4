"""LangChain's OpenAI chat model against a running TabAgent daemon, unchanged: tools and structured output.

Usage: python langchain_agent.py BASE_URL MODEL. Prints one JSON object with what each call returned.
"""

import json
import sys

import openai

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field
from typing import Literal

base_url, model = sys.argv[1], sys.argv[2]


@tool
def get_weather(city: Literal["Oslo", "Lima"]) -> str:
    """Current weather in a city."""
    return "sunny"


class Verdict(BaseModel):
    """A yes/no verdict."""

    answer: Literal["yes", "no"] = Field(description="the verdict")
    sure: bool


llm = ChatOpenAI(base_url=base_url, api_key="unused", model=model, temperature=0, max_tokens=96, max_retries=0, timeout=60)
out = {}

# bind_tools + invoke: a forced call comes back as AIMessage.tool_calls with parsed arguments.
forced = llm.bind_tools([get_weather], tool_choice="required")
msg = forced.invoke("Weather in Oslo?")
out["invoke"] = {"tool_calls": [{"name": c["name"], "args": c["args"], "id": c["id"]} for c in msg.tool_calls], "content": msg.content}

# stream: the chunks add up to the same kind of call.
acc = None
for chunk in forced.stream("Weather in Lima?"):
    acc = chunk if acc is None else acc + chunk
out["stream"] = {"tool_calls": [{"name": c["name"], "args": c["args"]} for c in acc.tool_calls]}

# A full agent turn: the call, the tool's answer, then text.
call = msg.tool_calls[0]
final = llm.bind_tools([get_weather], tool_choice="none").invoke(
    [HumanMessage("Weather in Oslo?"), msg, ToolMessage(content=get_weather.invoke(call["args"]), tool_call_id=call["id"])]
)
out["round_trip"] = {"content_is_text": isinstance(final.content, str), "tool_calls": final.tool_calls}

# with_structured_output: the three methods.
for method in ("function_calling", "json_schema"):
    value = llm.with_structured_output(Verdict, method=method).invoke("Is the sky blue?")
    out[method] = value.model_dump()
# json_mode: any JSON object. Random weights rarely close their strings, so the answer may stop at max_tokens: the
# client then raises with the partial completion, which must still be the start of an object.
try:
    raw = llm.with_structured_output(method="json_mode", include_raw=True).invoke("Answer in JSON: is the sky blue?")
    content = str(raw["raw"].content)
except openai.LengthFinishReasonError as e:
    content = e.completion.choices[0].message.content or ""
out["json_mode"] = {"raw_starts_with_brace": content.lstrip().startswith("{")}

print(json.dumps(out))
