"""LMNT's streaming guide, blocking form: one thread feeds an LLM's reply in, another writes output.mp3.

With OPENAI_API_KEY set, the text comes from OpenAI's sync client (pip install openai);
otherwise from a local stand-in that streams a reply in token-sized pieces. With
LMNT_API_KEY unset, speech comes from the embedded offline server.

    python samples/streaming_guide.py [output.mp3] [--prompt "..."]
"""
import argparse
import os
import sys
import threading
import time

from lmnt_sync import Speech

LOCAL_REPLY = (
    "Hello! Streaming speech works like this. Text goes in while audio comes out, "
    "and the server waits for enough context before it speaks. Thanks for listening."
)


def llm_reply(prompt):
    """Yield the reply in pieces as an LLM streams it."""
    if os.environ.get("OPENAI_API_KEY"):
        from openai import OpenAI

        stream = OpenAI().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
        return
    for start in range(0, len(LOCAL_REPLY), 7):  # token-sized pieces, cut mid-word on purpose
        time.sleep(0.01)
        yield LOCAL_REPLY[start:start + 7]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="output.mp3")
    parser.add_argument("--prompt", default="Say hello and explain streaming speech in two sentences.")
    parser.add_argument("--voice", default="lily")
    args = parser.parse_args(argv)

    local = not os.environ.get("LMNT_API_KEY")
    if local:
        print("LMNT_API_KEY is not set: using the embedded local server", file=sys.stderr)
    with Speech(local=local) as speech:
        conn = speech.synthesize_streaming(args.voice, format="mp3")
        failure = []

        def write_audio():
            try:
                with open(args.output, "wb") as out:
                    for message in conn:
                        out.write(message["audio"])
            except Exception as exc:  # hand it to the main thread
                failure.append(exc)

        writer = threading.Thread(target=write_audio)
        writer.start()
        for text in llm_reply(args.prompt):
            conn.append_text(text)
        conn.finish()
        writer.join()
        if failure:
            raise failure[0]
    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
