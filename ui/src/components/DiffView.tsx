import { useEffect, useMemo, useState } from "react";
import type { DiffFile, DiffLine } from "../api/models";

type Highlighter = typeof import("../lib/highlight");
let loaded: Highlighter | null = null;

function useHighlighter(): Highlighter | null {
  const [hl, setHl] = useState<Highlighter | null>(loaded);
  useEffect(() => {
    if (!hl) void import("../lib/highlight").then((m) => setHl((loaded = m)));
  }, [hl]);
  return hl;
}

function Code({ text, lang, hl }: { text: string; lang: string | null; hl: Highlighter | null }) {
  if (hl && lang && text.length < 2000) {
    return <code dangerouslySetInnerHTML={{ __html: hl.highlightLine(text, lang) || " " }} />;
  }
  return <code>{text || " "}</code>;
}

type Pair = { left?: DiffLine; right?: DiffLine };

function pairs(lines: DiffLine[]): Pair[] {
  const out: Pair[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.type === "context") {
      out.push({ left: line, right: line });
      i++;
      continue;
    }
    const dels: DiffLine[] = [];
    const adds: DiffLine[] = [];
    while (i < lines.length && lines[i]!.type === "del") dels.push(lines[i++]!);
    while (i < lines.length && lines[i]!.type === "add") adds.push(lines[i++]!);
    for (let k = 0; k < Math.max(dels.length, adds.length); k++) out.push({ left: dels[k], right: adds[k] });
  }
  return out;
}

export function DiffView({ file, split: wanted }: { file: DiffFile; split: boolean }) {
  const hl = useHighlighter();
  // A new or deleted file has one side only: split would leave half the screen empty.
  const split = wanted && file.status !== "added" && file.status !== "deleted";
  const lang = useMemo(() => (hl ? hl.languageFor(file.path) : null), [hl, file.path]);
  if (file.binary) return <div className="muted pad">Binary file</div>;
  if (!file.hunks.length) return <div className="muted pad">No textual changes</div>;
  return (
    <div className={`diff ${split ? "split" : "unified"}`} data-testid="diff" data-path={file.path}>
      {file.hunks.map((h, hi) => (
        <table key={hi} className="hunk">
          <thead>
            <tr>
              <th colSpan={split ? 4 : 3} className="hunk-head">
                {h.header}
              </th>
            </tr>
          </thead>
          <tbody>
            {split
              ? pairs(h.lines).map((p, i) => (
                  <tr key={i}>
                    <td className="ln">{p.left?.old_line ?? ""}</td>
                    <td className={`cell ${p.left ? p.left.type : "empty"}`}>
                      {p.left && <Code text={p.left.text} lang={lang} hl={hl} />}
                    </td>
                    <td className="ln">{p.right?.new_line ?? ""}</td>
                    <td className={`cell ${p.right ? p.right.type : "empty"}`}>
                      {p.right && <Code text={p.right.text} lang={lang} hl={hl} />}
                    </td>
                  </tr>
                ))
              : h.lines.map((l, i) => (
                  <tr key={i} className={l.type}>
                    <td className="ln">{l.old_line ?? ""}</td>
                    <td className="ln">{l.new_line ?? ""}</td>
                    <td className={`cell ${l.type}`}>
                      <span className="sign">{l.type === "add" ? "+" : l.type === "del" ? "−" : " "}</span>
                      <Code text={l.text} lang={lang} hl={hl} />
                    </td>
                  </tr>
                ))}
          </tbody>
        </table>
      ))}
    </div>
  );
}
