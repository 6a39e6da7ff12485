import { useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { api } from "../api/client";
import type { Options } from "../api/client";
import type { TokenDay } from "../api/models";
import { ErrorNote, Spinner } from "../components/ui";

// The Analytics page (loaded on demand, with its chart library): spend over time, by model and
// by repository, tool health, and today's / this month's burn against the budget caps. The
// numbers come from the hourly rollups; computed and CLI-reported cost are shown side by side.

type Range = "today" | "7d" | "30d" | "all";
type AnalyticsGet = "/api/analytics/overview" | "/api/analytics/token-usage" | "/api/analytics/models" | "/api/analytics/repos" | "/api/analytics/tools";

const usd = (v: number | null | undefined) => (v == null ? "–" : `$${v < 10 ? v.toFixed(3) : v.toFixed(2)}`);
const pct = (v: number | null | undefined) => (v == null ? "–" : `${Math.round(v * 100)}%`);
const num = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(1)}k` : String(v));
const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;

function useAnalytics<P extends AnalyticsGet>(path: P, range: Range, extra: { top?: number } = {}) {
  // Every analytics read takes the same range and time zone (the generic path hides that from
  // the compiler, hence the one cast); the answer is typed from the schema.
  const opts = { query: { range, tz, ...extra } } as Options<P, "get">;
  return useQuery({ queryKey: ["analytics", path, range, extra], queryFn: () => api.get(path, opts) });
}

async function downloadCsv(path: string, range: Range): Promise<void> {
  const resp = await fetch(`/api/analytics/${path}?range=${range}&tz=${encodeURIComponent(tz)}`, {
    headers: { Accept: "text/csv" },
    credentials: "same-origin",
  });
  const url = URL.createObjectURL(await resp.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = `codeyard-${path}-${range}.csv`;
  a.click();
  URL.revokeObjectURL(url);
}

/** Cost per day as bars (uPlot, imported with this page only). */
function CostChart({ days }: { days: TokenDay[] }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let chart: { destroy(): void } | undefined;
    let cancelled = false;
    void Promise.all([import("uplot"), import("uplot/dist/uPlot.min.css")]).then(([{ default: UPlot }]) => {
      if (cancelled || !ref.current) return;
      const xs = days.map((d) => Date.parse(`${d.date}T12:00:00Z`) / 1000);
      const width = ref.current.clientWidth || 320;
      chart = new UPlot(
        {
          width,
          height: 180,
          legend: { show: false },
          scales: { x: { time: true } },
          axes: [{ stroke: "#999" }, { stroke: "#999", values: (_u, vals) => vals.map((v) => `$${v}`) }],
          series: [
            {},
            {
              label: "Cost",
              stroke: "#6aa9ff",
              fill: "rgba(106,169,255,0.35)",
              paths: UPlot.paths.bars!({ size: [0.7, 40] }),
            },
          ],
        },
        [xs, days.map((d) => d.cost_usd)],
        ref.current,
      );
    });
    return () => {
      cancelled = true;
      chart?.destroy();
    };
  }, [days]);
  return <div ref={ref} className="chart" data-testid="cost-chart" aria-label="Cost per day" />;
}

function Bars({ rows, label }: { rows: { key: string; value: number; note?: string }[]; label: string }) {
  const max = Math.max(...rows.map((r) => r.value), 0.000001);
  return (
    <div className="stack" aria-label={label}>
      {rows.map((r) => (
        <div key={r.key} className="bar-row">
          <div className="bar-label">
            <span>{r.key || "(none)"}</span>
            <span className="muted small">
              {usd(r.value)} {r.note}
            </span>
          </div>
          <div className="bar-track">
            <div className="bar-fill" style={{ width: `${(100 * r.value) / max}%` }} />
          </div>
        </div>
      ))}
    </div>
  );
}

function Burn({ period, label }: { period: "day" | "month"; label: string }) {
  const q = useQuery({ queryKey: ["usage", period], queryFn: () => api.get("/api/usage", { query: { period } }) });
  if (!q.data) return null;
  const spent = q.data.total.cost_usd;
  const cap = q.data.cap_usd;
  const share = cap ? Math.min(1, spent / cap) : 0;
  return (
    <div className="bar-row" data-testid={`burn-${period}`}>
      <div className="bar-label">
        <span>{label}</span>
        <span className="muted small">
          {usd(spent)} {cap ? `of ${usd(cap)}` : "(no cap)"}
        </span>
      </div>
      <div className="bar-track">
        <div className={`bar-fill${share > 0.9 ? " hot" : ""}`} style={{ width: `${cap ? share * 100 : 0}%` }} />
      </div>
    </div>
  );
}

export default function AnalyticsView() {
  const [range, setRange] = useState<Range>("7d");
  const ov = useAnalytics("/api/analytics/overview", range);
  const days = useAnalytics("/api/analytics/token-usage", range);
  const models = useAnalytics("/api/analytics/models", range);
  const repos = useAnalytics("/api/analytics/repos", range);
  const tools = useAnalytics("/api/analytics/tools", range, { top: 10 });
  const o = ov.data;
  return (
    <div className="page" data-testid="analytics">
      <header className="page-head">
        <h1>Analytics</h1>
        <div className="chips" role="tablist">
          {(["today", "7d", "30d", "all"] as Range[]).map((r) => (
            <button key={r} className={`chip${range === r ? " on" : ""}`} onClick={() => setRange(r)}>
              {r}
            </button>
          ))}
        </div>
      </header>
      {ov.error && <ErrorNote error={ov.error} />}
      {!o ? (
        <Spinner />
      ) : (
        <div className="stats" data-testid="overview">
          <div className="stat">
            <b>{usd(o.cost_usd)}</b>
            <span>cost</span>
          </div>
          <div className="stat">
            <b>{o.runs}</b>
            <span>runs ({o.active_runs} active)</span>
          </div>
          <div className="stat">
            <b>{pct(o.success_rate)}</b>
            <span>succeeded</span>
          </div>
          <div className="stat">
            <b>{num(o.input_tokens + o.cache_read_tokens + o.cache_write_tokens)}</b>
            <span>input tokens ({pct(o.cache_hit_rate)} cached)</span>
          </div>
          <div className="stat">
            <b>{num(o.output_tokens)}</b>
            <span>output tokens</span>
          </div>
          <div className="stat" title="Codeyard's price-map cost vs what the CLIs reported">
            <b>{usd(o.computed_cost_usd)}</b>
            <span>computed · {usd(o.reported_cost_usd)} reported</span>
          </div>
        </div>
      )}
      <section className="card stack">
        <h3>Budget burn</h3>
        <Burn period="day" label="Today" />
        <Burn period="month" label="This month" />
      </section>
      <section className="card stack">
        <div className="row spread">
          <h3>Cost per day</h3>
          <button className="small" onClick={() => void downloadCsv("token-usage", range)}>
            CSV
          </button>
        </div>
        {days.data && days.data.data.length > 0 ? <CostChart days={days.data.data} /> : <p className="muted">No usage yet.</p>}
      </section>
      <section className="card stack">
        <div className="row spread">
          <h3>By model</h3>
          <button className="small" onClick={() => void downloadCsv("models", range)}>
            CSV
          </button>
        </div>
        {models.data && (
          <Bars
            label="Cost by model"
            rows={models.data.data.map((m) => ({ key: m.model, value: m.cost_usd, note: `· ${m.runs} runs` }))}
          />
        )}
      </section>
      <section className="card stack">
        <h3>By repository</h3>
        {repos.data && <Bars label="Cost by repository" rows={repos.data.data.map((r) => ({ key: r.key, value: r.cost_usd }))} />}
      </section>
      <section className="card stack">
        <h3>Tool health</h3>
        <table className="table small" data-testid="tools">
          <thead>
            <tr>
              <th>Tool</th>
              <th>Calls</th>
              <th>Failing</th>
              <th>p50</th>
              <th>p95</th>
            </tr>
          </thead>
          <tbody>
            {tools.data?.data.map((t) => (
              <tr key={t.tool}>
                <td>{t.tool}</td>
                <td>{t.count}</td>
                <td className={t.failure_rate > 0.2 ? "danger" : ""}>{pct(t.failure_rate)}</td>
                <td>{t.p50_ms == null ? "–" : `≤${t.p50_ms} ms`}</td>
                <td>{t.p95_ms == null ? "–" : `≤${t.p95_ms} ms`}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}
