// Dictation: records with MediaRecorder, sends the clip to POST /api/voice/transcribe and hands
// the text to the caller (a compose box). It never types into a terminal or sends anything.
import { useRef, useState } from "react";
import { authHeaders } from "../api/client";

export function MicButton({ runId, onText }: { runId?: string; onText: (text: string) => void }) {
  const [state, setState] = useState<"idle" | "recording" | "working">("idle");
  const [error, setError] = useState<string | null>(null);
  const recorder = useRef<MediaRecorder | null>(null);
  if (typeof MediaRecorder === "undefined" || !navigator.mediaDevices) return null;

  const stop = () => recorder.current?.stop();
  const start = async () => {
    setError(null);
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks: Blob[] = [];
      const rec = new MediaRecorder(stream);
      recorder.current = rec;
      rec.ondataavailable = (e) => chunks.push(e.data);
      rec.onstop = async () => {
        stream.getTracks().forEach((t) => t.stop());
        setState("working");
        const form = new FormData();
        form.append("audio", new Blob(chunks, { type: rec.mimeType }), "dictation.webm");
        if (runId) form.append("run_id", runId);
        try {
          const resp = await fetch("/api/voice/transcribe", {
            method: "POST",
            body: form,
            headers: authHeaders("POST"),
            credentials: "same-origin",
          });
          const body = (await resp.json()) as { text?: string; detail?: string };
          if (!resp.ok) throw new Error(body.detail ?? `HTTP ${resp.status}`);
          if (body.text) onText(body.text);
        } catch (e) {
          setError(e instanceof Error ? e.message : String(e));
        } finally {
          setState("idle");
        }
      };
      rec.start();
      setState("recording");
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <>
      <button
        type="button"
        className={`mic ${state}`}
        aria-label={state === "recording" ? "Stop dictation" : "Dictate"}
        title={error ?? (state === "recording" ? "Stop and transcribe" : "Dictate (text goes to the box)")}
        disabled={state === "working"}
        onClick={() => (state === "recording" ? stop() : void start())}
        data-testid="mic"
      >
        {state === "recording" ? "■" : state === "working" ? "…" : "🎤"}
      </button>
    </>
  );
}
