// Real-agent options as a form: model (picked from /api/models), permission mode, env sets,
// instructions and budget. The raw JSON stays as an "advanced" field; form values win over it.
import { useQuery } from "@tanstack/react-query";
import { api } from "../api/client";

export interface AgentOptionsValue {
  model: string;
  permissionMode: string;
  envSetIds: string[];
  instructions: string;
  budget: string;
  advanced: string;
  scenario: string;
}

export const emptyOptions: AgentOptionsValue = {
  model: "",
  permissionMode: "",
  envSetIds: [],
  instructions: "",
  budget: "",
  advanced: "",
  scenario: "",
};

const PERMISSION_MODES: [string, string][] = [
  ["", "Server default"],
  ["default", "Ask before writes and commands"],
  ["plan", "Plan only: no writes"],
  ["auto", "Allow (hard gates still ask)"],
];

function perMillion(cost: number | null): string {
  return cost == null ? "?" : `$${(cost * 1e6).toFixed(cost * 1e6 < 1 ? 2 : 0)}`;
}

/** The request parts the form produces, or an error message naming the field to fix. */
export function buildOptions(
  provider: string | null,
  v: AgentOptionsValue,
): { agent_options: Record<string, unknown>; model?: string; budget_usd?: number; env_set_ids?: string[] } | string {
  let options: Record<string, unknown> = {};
  if (v.advanced.trim()) {
    try {
      const parsed: unknown = JSON.parse(v.advanced);
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return "Advanced options must be a JSON object.";
      options = parsed as Record<string, unknown>;
    } catch {
      return "Advanced options must be a JSON object.";
    }
  }
  if (provider === "script") {
    if (!v.scenario.trim() && !options.scenario) return "The script agent needs a scenario: paste its steps.";
    if (v.scenario.trim()) {
      try {
        const steps: unknown = JSON.parse(v.scenario);
        options.scenario = Array.isArray(steps) ? { steps } : steps;
      } catch {
        return "The scenario must be JSON: a list of steps or {\"steps\": [...]}.";
      }
    }
  }
  if (v.permissionMode) options.permission_mode = v.permissionMode;
  if (v.instructions.trim()) options.instructions = v.instructions.trim();
  const out: ReturnType<typeof buildOptions> = { agent_options: options };
  if (v.model.trim()) out.model = v.model.trim();
  if (v.budget.trim()) out.budget_usd = Number(v.budget);
  if (v.envSetIds.length) out.env_set_ids = v.envSetIds;
  return out;
}

/** A model name with suggestions (and prices) from ``/api/models`` for the provider. */
export function ModelField({
  provider,
  value,
  onChange,
  name = "model",
}: {
  provider: string | null;
  value: string;
  onChange: (v: string) => void;
  name?: string;
}) {
  const models = useQuery({
    queryKey: ["models", provider],
    queryFn: () =>
      api.get("/api/models", {
        query: { provider: provider && provider !== "script" ? provider : undefined },
      }),
    enabled: provider !== "script",
    staleTime: 300_000,
    retry: false,
  });
  const listId = `model-choices-${name}`;
  return (
    <label>
      Model
      <input
        name={name}
        list={listId}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        placeholder="The agent's default"
        autoComplete="off"
      />
      <datalist id={listId}>
        {(models.data?.data ?? []).map((m) => (
          <option key={m.id} value={m.id}>
            {`${perMillion(m.input_cost_per_token)} in / ${perMillion(m.output_cost_per_token)} out per million tokens`}
          </option>
        ))}
      </datalist>
    </label>
  );
}

/** Env sets to attach, by name (their values stay on the server). */
export function EnvSetField({ value, onChange }: { value: string[]; onChange: (ids: string[]) => void }) {
  const envSets = useQuery({
    queryKey: ["env-sets"],
    queryFn: () => api.get("/api/env-sets", { query: { limit: 200 } }),
    staleTime: 60_000,
    retry: false,
  });
  const sets = envSets.data?.data ?? [];
  return (
    <fieldset className="env-sets">
      <legend>Env sets</legend>
      {sets.length === 0 ? (
        <span className="muted small">None yet (Settings → Env sets).</span>
      ) : (
        sets.map((s) => (
          <label key={s.id} className="check">
            <input
              type="checkbox"
              checked={value.includes(s.id)}
              onChange={(e) => onChange(e.target.checked ? [...value, s.id] : value.filter((id) => id !== s.id))}
            />{" "}
            {s.name} <span className="muted small">{s.keys.join(", ")}</span>
          </label>
        ))
      )}
    </fieldset>
  );
}

export function AgentOptionsForm({
  provider,
  value,
  onChange,
}: {
  provider: string | null;
  value: AgentOptionsValue;
  onChange: (v: AgentOptionsValue) => void;
}) {
  const set = (patch: Partial<AgentOptionsValue>) => onChange({ ...value, ...patch });
  return (
    <div className="stack" data-testid="agent-options">
      {provider === "script" ? (
        <label>
          Scenario (the script agent's steps, JSON)
          <textarea
            name="scenario"
            rows={5}
            spellCheck={false}
            value={value.scenario}
            onChange={(e) => set({ scenario: e.target.value })}
            placeholder='[{"say": "hi"}, {"write": {"path": "a.txt", "content": "a"}}]'
          />
        </label>
      ) : (
        <ModelField provider={provider} value={value.model} onChange={(model) => set({ model })} />
      )}
      <label>
        Permission mode
        <select value={value.permissionMode} onChange={(e) => set({ permissionMode: e.target.value })} aria-label="Permission mode">
          {PERMISSION_MODES.map(([mode, label]) => (
            <option key={mode} value={mode}>
              {label}
            </option>
          ))}
        </select>
      </label>
      <EnvSetField value={value.envSetIds} onChange={(envSetIds) => set({ envSetIds })} />
      <label>
        Instructions
        <textarea
          name="instructions"
          rows={3}
          value={value.instructions}
          onChange={(e) => set({ instructions: e.target.value })}
          placeholder="Extra guidance for every turn"
        />
      </label>
      <label>
        Budget (USD)
        <input
          name="budget"
          type="number"
          min="0"
          step="0.01"
          inputMode="decimal"
          value={value.budget}
          onChange={(e) => set({ budget: e.target.value })}
        />
      </label>
      <label>
        Advanced: agent options (JSON)
        <textarea
          name="agent_options"
          aria-label="Agent options (JSON)"
          rows={3}
          spellCheck={false}
          value={value.advanced}
          onChange={(e) => set({ advanced: e.target.value })}
          placeholder='{"env": {"KEY": "value"}}'
        />
        <span className="muted small">The fields above are applied on top of it.</span>
      </label>
    </div>
  );
}
