"""The local engine's worker: ``python -m codeyard.voice.sphinx_worker --hmm D --dict F --lm F
--vocabulary JSON`` reads a recording on stdin and prints ``{"text": ...}``. Exit status 3 (with
the reason on stderr's last line) means the upload is not decodable audio. Only this process
loads PocketSphinx and PyAV (the ``voice-local`` extra); the server never imports this module.

Bias: PocketSphinx cannot take a prompt, but its dictionary and language model take new words.
Each repository word made of dictionary words (``compute_invoice_total``, ``InvoiceTotal``) is
added as one word, pronounced as its parts in a row, to the dictionary and (as a unigram) the
language model, so saying "compute invoice total" comes back as the symbol itself (measured:
without it the same clip reads "computing my stove l"). A part with no known pronunciation
leaves its word out (PocketSphinx has no grapheme-to-phoneme model to guess one).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable

import pocketsphinx

from codeyard.voice.audio import pcm16k
from codeyard.voice.local import EXIT_BAD_AUDIO
from codeyard.voice.transcribe import AudioError

_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def split_identifier(word: str) -> list[str]:
    """``compute_invoice_total`` / ``InvoiceTotal`` / ``user-settings`` → lower-case parts."""
    return [part.lower() for part in _PARTS.findall(word)]


def bias_entries(
    words: Iterable[str], lookup: Callable[[str], str | None]
) -> list[tuple[str, str]]:
    """``(word, phones)`` for each word every part of which ``lookup`` can pronounce, the
    phones of its parts joined. Words with dots or slashes (file names, branches) are left to
    their stems and parts, which the caller's vocabulary already lists."""
    entries: list[tuple[str, str]] = []
    seen: set[str] = set()
    for word in words:
        if word in seen or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", word):
            continue
        seen.add(word)
        parts = split_identifier(word)
        phones = [lookup(part) for part in parts]
        if parts and all(phones):
            entries.append((word, " ".join(p for p in phones if p)))
    return entries


def known(decoder: pocketsphinx.Decoder, word: str) -> bool:
    """An ordinary word the model already has (``billing``): nothing to add."""
    return decoder.lookup_word(word) is not None


def recognize(pcm: bytes, hmm: str, dictionary: str, lm: str, vocabulary: list[str]) -> str:
    """Decode 16 kHz mono s16le ``pcm`` with the model, biased towards ``vocabulary``."""
    decoder = pocketsphinx.Decoder(
        hmm=hmm, dict=dictionary, lm=lm, samprate=16000, loglevel="FATAL"
    )
    new = [
        (w, p) for w, p in bias_entries(vocabulary, decoder.lookup_word) if not known(decoder, w)
    ]
    for i, (word, phones) in enumerate(new):
        # Also enters the language model (as a unigram); the search is rebuilt once, at the end.
        decoder.add_word(word, phones, update=i == len(new) - 1)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return str(hyp.hypstr) if hyp is not None else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codeyard.voice.sphinx_worker",
        description="Transcribe the recording on stdin with PocketSphinx; print {'text': ...}.",
    )
    parser.add_argument("--hmm", required=True, help="acoustic model folder")
    parser.add_argument("--dict", required=True, help="pronunciation dictionary")
    parser.add_argument("--lm", required=True, help="language model")
    parser.add_argument("--vocabulary", default="[]", help="JSON list of words to favour")
    args = parser.parse_args(argv)
    try:
        pcm = pcm16k(sys.stdin.buffer.read())
    except AudioError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_AUDIO
    text = recognize(pcm, args.hmm, args.dict, args.lm, list(json.loads(args.vocabulary)))
    json.dump({"text": text}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
