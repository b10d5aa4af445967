/**
 * Subqueries over sharded tables in a statement that runs on several shards. Each shard
 * evaluates a subquery over its own rows only, so the combined answer is right only when the
 * subquery keeps or drops each row by itself (a filter or projection): a derived table or WITH
 * query without aggregates, DISTINCT, LIMIT, window functions or set operations other than
 * UNION ALL. A subquery expression (IN/EXISTS/scalar/ARRAY) over a sharded table compares an
 * outer row with the rows of one shard only, and is refused.
 */
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { ShardingSchema } from '../sharding/index.js';
import type { Node } from './ast.js';
import { as, findAggregate, walk } from './ast.js';
import { classify } from './tables.js';

const SUBLINK_NAMES: Record<string, string> = {
  EXISTS_SUBLINK: 'EXISTS (SELECT …)',
  ANY_SUBLINK: 'IN / = ANY (SELECT …)',
  ALL_SUBLINK: 'ALL (SELECT …)',
  EXPR_SUBLINK: 'a scalar subquery (SELECT …)',
  MULTIEXPR_SUBLINK: 'a multi-column subquery',
  ARRAY_SUBLINK: 'ARRAY(SELECT …)',
  ROWCOMPARE_SUBLINK: 'a row comparison with (SELECT …)',
  CTE_SUBLINK: 'a subquery',
};

function refused(construct: string): PgError {
  return new PgError(SQLSTATE.featureNotSupported, `${construct} over a sharded table is not supported in a query that spans several shards: each shard would compute it from its own rows only`, {
    hint: 'Add a condition on the shard key so the query runs on one shard, run it on each shard with /* pgshift_shard: N */ and combine the results in the application, or rewrite it as a join on the shard key.',
  });
}

/** What makes a SELECT body's result depend on rows of other shards, or null when it is row by row. */
function notRowByRow(sel: Node): string | null {
  if (sel.op && sel.op !== 'SETOP_NONE') {
    if (sel.op !== 'SETOP_UNION' || !sel.all) return String(sel.op).replace('SETOP_', '');
    return notRowByRow(sel.larg as Node) ?? notRowByRow(sel.rarg as Node);
  }
  if (sel.distinctClause) return 'DISTINCT';
  if (sel.groupClause) return 'GROUP BY';
  if (sel.havingClause) return 'HAVING';
  if (sel.windowClause) return 'a WINDOW clause';
  if (sel.limitCount || sel.limitOffset) return 'LIMIT/OFFSET';
  for (const t of (sel.targetList ?? []) as Node[]) {
    const agg = findAggregate(t.ResTarget?.val);
    if (agg) return agg.window ? `window function ${agg.name}()` : `aggregate ${agg.name}()`;
  }
  return null;
}

/**
 * The error for the first subquery of `tree` over a sharded table that cannot run shard by shard,
 * or null. `tree` is a statement body (SelectStmt, UpdateStmt, DeleteStmt content).
 */
export function crossShardSubqueryError(tree: Node, schema: ShardingSchema, mentions: Set<string>): PgError | null {
  // WITH queries over sharded tables, by name: a reference to one counts as one to a sharded table.
  const shardedCtes = new Set<string>();
  const refsSharded = (n: unknown): boolean => {
    let found = false;
    walk(n, (x) => {
      if (found) return false;
      const rv = as(x, 'RangeVar');
      if (rv && rv.relname !== undefined) {
        if ((rv.schemaname === undefined && shardedCtes.has(String(rv.relname))) || classify(rv, schema, mentions).cls === 'sharded') found = true;
      }
      return undefined;
    });
    return found;
  };
  const ctes: Node[] = [];
  walk(tree, (x) => {
    const c = as(x, 'CommonTableExpr');
    if (c) ctes.push(c);
    return undefined;
  });
  // A WITH query may use earlier ones: repeat until no new name is found.
  for (let grew = true; grew; ) {
    grew = false;
    for (const c of ctes) {
      const name = String(c.ctename);
      if (!shardedCtes.has(name) && refsSharded(c.ctequery)) {
        shardedCtes.add(name);
        grew = true;
      }
    }
  }
  let error: PgError | null = null;
  walk(tree, (x) => {
    if (error) return false;
    const link = as(x, 'SubLink');
    if (link && refsSharded(link.subselect)) {
      error = refused(SUBLINK_NAMES[String(link.subLinkType)] ?? 'a subquery');
      return false;
    }
    const from = as(x, 'RangeSubselect');
    if (from && refsSharded(from.subquery)) {
      const why = notRowByRow(as(from.subquery, 'SelectStmt') ?? {});
      if (why) error = refused(`${why} inside a subquery in FROM`);
    }
    const cte = as(x, 'CommonTableExpr');
    if (cte && shardedCtes.has(String(cte.ctename))) {
      const q = as(cte.ctequery, 'SelectStmt');
      const why = q ? notRowByRow(q) : 'a data-modifying statement';
      if (why) error = refused(`${why} inside WITH query "${String(cte.ctename)}"`);
      else if (treeIsRecursive(tree)) error = refused('WITH RECURSIVE');
    }
    return undefined;
  });
  return error;
}

function treeIsRecursive(tree: Node): boolean {
  let rec = false;
  walk(tree, (x) => {
    if ((x.withClause as Node | undefined)?.recursive) rec = true;
    return rec ? false : undefined;
  });
  return rec;
}
