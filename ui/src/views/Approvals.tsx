import { useQuery } from "@tanstack/react-query";
import { api } from "../api/client";
import { ApprovalCard } from "../components/ApprovalCard";
import { Empty, ErrorNote, Spinner } from "../components/ui";

export function ApprovalsView() {
  const q = useQuery({
    queryKey: ["approvals", "pending"],
    queryFn: () => api.get("/api/approvals", { query: { status: "pending", limit: 500 } }),
    refetchInterval: 3000,
  });
  const items = q.data?.data ?? [];
  return (
    <div className="page narrow">
      <header className="page-head">
        <h1>Approvals</h1>
        <span className="muted">{items.length} waiting</span>
      </header>
      <ErrorNote error={q.error} />
      {q.isPending ? (
        <Spinner />
      ) : items.length ? (
        <div className="stack" data-testid="approvals-inbox">
          {items.map((a) => (
            <ApprovalCard key={a.id} approval={a} showRun />
          ))}
        </div>
      ) : (
        <Empty>Nothing is waiting for you.</Empty>
      )}
    </div>
  );
}
