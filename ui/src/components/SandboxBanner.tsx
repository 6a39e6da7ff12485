import { useQuery } from "@tanstack/react-query";
import { api } from "../api/client";
import { Link } from "./ui";

/** Loud, on every page, not dismissible: the sandbox is off (an admin's choice), or it is on
 *  but bubblewrap cannot run here, so every run fails until someone fixes it. */
export function SandboxBanner() {
  const q = useQuery({ queryKey: ["settings"], queryFn: () => api.get("/api/settings"), retry: false });
  const status = q.data?.sandbox_status;
  if (!status || (status.mode === "on" && status.available)) return null;
  const text =
    status.mode === "off"
      ? status.warning ?? "SANDBOX OFF: agents run with full access to the server's files."
      : `SANDBOX UNAVAILABLE: runs fail until it is fixed. ${status.problem ?? ""}`;
  return (
    <div className="banner danger-banner" role="alert" data-testid="sandbox-banner">
      <span className="grow">{text}</span>
      <Link to="/settings/general">Sandbox settings</Link>
    </div>
  );
}
