import { ApiError } from "../../api/client";
import { Empty, ErrorNote } from "../../components/ui";

/** A section whose API this server does not offer (older server), or the error it gave. */
export function NotAvailable({ error }: { error: unknown }) {
  if (error instanceof ApiError && (error.status === 404 || error.status === 405))
    return <Empty>This server does not offer this yet.</Empty>;
  return <ErrorNote error={error} />;
}
