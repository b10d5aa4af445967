/**
 * The query router: parse (cached), classify, route to shards, and merge cross-shard results.
 * See docs/routing.md.
 */
export { initParser, ParseCache, type ParseCacheStats } from './parse-cache.js';
export type { ParsedQuery, ParsedStatement } from './parse-cache.js';
export { analyze, isReadOnlyTree } from './analyze.js';
export type { QueryAnalysis, StatementInfo, StatementKind, SetTarget } from './analyze.js';
export { route, routeStatement } from './route.js';
export type { RouteContext, RouteDecision, TableColumns, MergePlan, SplitPart, CopyPlan, BoundParam } from './route.js';
export type { SortKey, OutputColumn, AggregatePlan, AggregateFn } from './merge-plan.js';
export { ResultMerger } from './merger.js';
export type { MergeResult, Row } from './merger.js';
export { NULL_KEY_SHARD } from './key-values.js';
export type { RowMove } from './shard-key-update.js';
export { MOVE_COLUMNS } from './shard-key-update.js';
