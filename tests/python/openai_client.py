"""The official OpenAI Python SDK calling a stub LLM through the sidecar
(HTTPS_PROXY and SSL_CERT_FILE are set by the test: the client trusts only
the sidecar's interception CA). Prints one JSON line per call.
Usage: openai_client.py BASE_URL"""

import json
import sys

import openai


def main(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=20)
    messages = [{"role": "user", "content": "hello"}]

    def report(name, fn):
        try:
            out = fn()
            print(json.dumps({"call": name, "ok": True, **out}), flush=True)
        except openai.APIStatusError as e:
            print(json.dumps({"call": name, "ok": False, "status": e.status_code, "error": str(e)}), flush=True)
        except openai.APIConnectionError as e:
            print(json.dumps({"call": name, "ok": False, "status": None, "error": repr(e.__cause__ or e)}), flush=True)

    def plain():
        r = client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=64)
        return {"text": r.choices[0].message.content, "tokens": r.usage.total_tokens}

    def streamed():
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            max_tokens=64,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, tokens = "", None
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage:
                tokens = chunk.usage.total_tokens
        return {"text": text, "tokens": tokens}

    def frontier():
        r = client.chat.completions.create(model="gpt-5", messages=messages, max_tokens=64)
        return {"text": r.choices[0].message.content}

    report("frontier", frontier)
    report("plain", plain)
    report("streamed", streamed)
    report("over-budget", plain)


if __name__ == "__main__":
    main(sys.argv[1])
