// A run's terminal: xterm.js over the terminal WebSocket (binary frames), reconnecting with
// `since=<offset>` so nothing is lost or repeated; the screen is restored from the server's
// scrollback after a reload or a server restart. Loaded only on this view (lazy chunk).
import { FitAddon } from "@xterm/addon-fit";
import { SearchAddon } from "@xterm/addon-search";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "react";
import { api, ApiError, type Resp } from "../api/client";
import { MicButton } from "../components/MicButton";
import { Link } from "../components/ui";

type TerminalInfo = Resp<"/api/terminals", "post">;
type Lease = Resp<"/api/runs/{run_ref}/preview", "get">;
type Asked = Resp<"/api/terminals/ask", "post">;

const KEY = (run: string) => `codeyard.terminal.${run}`;

async function terminalFor(runRef: string, fresh: boolean): Promise<TerminalInfo> {
  const known = fresh ? null : sessionStorage.getItem(KEY(runRef));
  const listed = await api.get("/api/runs/{run_ref}/terminals", { path: { run_ref: runRef } });
  const pick = listed.data.find((t) => t.id === known) ?? (fresh ? undefined : listed.data.find((t) => t.status === "live"));
  if (pick) return pick;
  const made = await api.post("/api/terminals", { run_id: runRef, cols: 100, rows: 30 });
  return made;
}

export default function TerminalView({ runRef }: { runRef: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [info, setInfo] = useState<TerminalInfo | null>(null);
  const [state, setState] = useState("connecting");
  const [error, setError] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);
  const searchRef = useRef<SearchAddon | null>(null);

  useEffect(() => {
    let closed = false;
    let ws: WebSocket | null = null;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let offset: number | null = null;
    let delay = 250;
    const term = new Terminal({ convertEol: false, scrollback: 10000, fontSize: 13, cursorBlink: true });
    const fit = new FitAddon();
    const search = new SearchAddon();
    searchRef.current = search;
    term.loadAddon(fit);
    term.loadAddon(search);
    if (box.current) term.open(box.current);
    fit.fit();
    const encoder = new TextEncoder();

    const sendSize = () => {
      if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
    };
    const onResize = () => {
      fit.fit();
      sendSize();
    };
    window.addEventListener("resize", onResize);
    term.onData((data) => {
      if (ws?.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
    });

    const connect = (t: TerminalInfo) => {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const since = offset === null ? "" : `?since=${offset}`;
      ws = new WebSocket(`${proto}//${location.host}/api/terminals/${t.id}/ws${since}`);
      ws.binaryType = "arraybuffer";
      ws.onopen = () => {
        delay = 250;
        setState("open");
        sendSize();
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data === "string") {
          const msg = JSON.parse(ev.data) as { type: string; start?: number; status?: string; reason?: string };
          if (msg.type === "hello") {
            if (offset === null || msg.start !== offset) term.reset();
            offset = msg.start ?? 0;
            setInfo((prev) => ({ ...(prev ?? t), status: msg.status ?? t.status }));
          } else if (msg.type === "exit") {
            setState("ended");
            setInfo((prev) => (prev ? { ...prev, status: msg.status ?? "exited", close_reason: msg.reason ?? null } : prev));
          }
          return;
        }
        const bytes = new Uint8Array(ev.data as ArrayBuffer);
        offset = (offset ?? 0) + bytes.byteLength;
        term.write(bytes);
      };
      ws.onclose = () => {
        if (closed) return;
        setState((s) => (s === "ended" ? s : "reconnecting"));
        retry = setTimeout(() => !closed && connect(t), delay);
        delay = Math.min(delay * 2, 5000);
      };
    };

    terminalFor(runRef, generation > 0)
      .then((t) => {
        if (closed) return;
        sessionStorage.setItem(KEY(runRef), t.id);
        setInfo(t);
        connect(t);
        term.focus();
      })
      .catch((e: unknown) => setError(e instanceof ApiError ? e.message : String(e)));

    return () => {
      closed = true;
      clearTimeout(retry);
      window.removeEventListener("resize", onResize);
      ws?.close();
      term.dispose();
    };
  }, [runRef, generation]);

  const ended = info && info.status !== "live";
  return (
    <div className="pad terminal-view">
      <div className="terminal-head">
        <Link to={`/runs/${runRef}`} className="back" title="Back to the run">
          ← Run {runRef}
        </Link>
        <span className={`conn ${state}`} data-testid="terminal-state">
          {state}
        </span>
        <input
          className="terminal-search"
          placeholder="Search output"
          aria-label="Search the terminal output"
          onKeyDown={(e) => {
            if (e.key === "Enter") searchRef.current?.findNext((e.target as HTMLInputElement).value);
          }}
        />
        {ended && (
          <button onClick={() => setGeneration((g) => g + 1)} data-testid="terminal-new">
            New terminal
          </button>
        )}
      </div>
      {error && <p className="error">{error}</p>}
      {ended && (
        <p className="note" data-testid="terminal-ended">
          {info?.status === "lost" ? "The server restarted: this is the scrollback, the program is gone." : info?.close_reason}
        </p>
      )}
      <div ref={box} className="terminal-box" data-testid="terminal" />
      {info && !ended && <AskBox terminalId={info.id} />}
      <PreviewLinks runRef={runRef} />
    </div>
  );
}

function AskBox({ terminalId }: { terminalId: string }) {
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState<Asked | null>(null);
  const [error, setError] = useState<string | null>(null);
  const ask = async () => {
    setBusy(true);
    setError(null);
    try {
      setAnswer(await api.post("/api/terminals/ask", { terminal_id: terminalId, text }));
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      className="ask-box"
      onSubmit={(e) => {
        e.preventDefault();
        if (text.trim()) void ask();
      }}
    >
      <input
        value={text}
        onChange={(e) => setText(e.target.value)}
        placeholder="Describe a command (it is pasted, never run)"
        aria-label="Ask for a shell command"
        data-testid="ask-input"
      />
      <MicButton onText={(t) => setText((v) => (v ? `${v} ${t}` : t))} />
      <button type="submit" disabled={busy}>
        Ask
      </button>
      {error && <span className="error">{error}</span>}
      {answer && (
        <span className={`verdict ${answer.verdict.action}`} data-testid="ask-answer">
          <code>{answer.command}</code> — {answer.explanation} ({answer.verdict.action}
          {answer.inserted ? ", pasted: press Enter to run" : `: ${answer.verdict.reason}`})
        </span>
      )}
    </form>
  );
}

function PreviewLinks({ runRef }: { runRef: string }) {
  const [lease, setLease] = useState<Lease | null>(null);
  useEffect(() => {
    api
      .get("/api/runs/{run_ref}/preview", { path: { run_ref: runRef } })
      .then(setLease)
      .catch(() => setLease(null));
  }, [runRef]);
  if (!lease) return null;
  const open = async (index: number) => {
    const link = await api.post("/api/runs/{run_ref}/preview/{index}/link", undefined, { path: { run_ref: runRef, index } });
    window.open(link.url, "_blank", "noopener");
  };
  return (
    <p className="preview-links" data-testid="preview-links">
      Ports: <code>$PORT</code>={lease.ports[0]}
      {lease.ports.slice(0, 3).map((port, i) => (
        <span key={port}>
          {" "}
          <button className="link" onClick={() => void open(i)}>
            preview :{port}
          </button>{" "}
          <a href={`/api/preview/${port}/`} target="_blank" rel="noopener">
            (path)
          </a>
        </span>
      ))}
    </p>
  );
}
