"""Auto-blocks: ``<!-- codeyard:auto:start -->`` … ``<!-- codeyard:auto:end -->``.

Regenerating replaces only what is between the markers; text before and after them is a
person's and is kept byte for byte. A document without markers (a person removed them) gets a
new block appended rather than losing its text.
"""

from __future__ import annotations

START = "<!-- codeyard:auto:start -->"
END = "<!-- codeyard:auto:end -->"


def block(content: str) -> str:
    return f"{START}\n{content.rstrip()}\n{END}"


def new_document(title: str, content: str) -> str:
    return f"# {title}\n\n{block(content)}\n"


def merge(existing: str, content: str) -> str:
    """``existing`` with its auto-block replaced by ``content`` (appended when it has none)."""
    start = existing.find(START)
    end = existing.find(END, start + len(START)) if start >= 0 else -1
    if start < 0 or end < 0:
        return f"{existing.rstrip()}\n\n{block(content)}\n"
    return existing[:start] + block(content) + existing[end + len(END) :]
