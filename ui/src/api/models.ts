// Names for the response shapes the UI uses, all taken from the server's OpenAPI schema
// (generated into schema.d.ts; tests/unit/test_ui_api_types.py keeps it in step). Nothing here
// is written by hand: a field the server adds, renames or drops reaches the compiler.
import type { components } from "./schema";

type Schemas = components["schemas"];

export type RunStatus = Schemas["RunView"]["status"];
export type Usage = Schemas["UsageView"];
export type DiffStats = Schemas["DiffStatsView"];
export type Run = Schemas["RunView"];
export type RunEvent = Schemas["EventView"];
export type Approval = Schemas["ApprovalView"];
export type Snapshot = Schemas["SnapshotView"];
export type Task = Schemas["TaskView"];
export type DiffLine = Schemas["DiffLineView"];
export type DiffHunk = Schemas["DiffHunkView"];
export type DiffFile = Schemas["DiffFileView"];
export type Checkpoint = Schemas["CheckpointView"];
export type Project = Schemas["ProjectView"];
export type Agent = Schemas["AgentView"];
export type Provider = Schemas["ProviderView"];
export type Rule = Schemas["RuleView"];
export type Policy = Schemas["PolicyView"];
export type PolicySet = Schemas["PolicySetView"];
export type EnvSet = Schemas["EnvSetView"];
export type ApiToken = Schemas["TokenView"];
export type NewApiToken = Schemas["NewTokenView"];
export type Settings = Schemas["SettingsView"];
export type SandboxStatus = Schemas["SandboxStatus"];
export type AuthStatus = Schemas["AuthStatusView"];
export type Me = Schemas["MeView"];
export type User = Schemas["UserView"];
export type MfaSetup = Schemas["MfaSetupView"];
export type BrowseEntry = Schemas["DirectoryEntry"];
export type Ticket = Schemas["TicketView"];
export type TicketStatus = Schemas["TicketView"]["status"];
export type TicketComment = Schemas["CommentView"];
export type Review = Schemas["ReviewView"];
export type TokenDay = Schemas["TokenDay"];
export type Preferences = Schemas["Preferences"];
export type TestResult = Schemas["TestResult"];
