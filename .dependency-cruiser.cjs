// The import rules of the house (docs/architecture.md): data flows one way,
// wire → frontend → router → backend; admin and migrate sit beside the data path; nothing
// imports the command line. `npm test` runs this check before the tests (scripts/test.mjs).
// Cycles made only of type imports are allowed: they vanish at compile time, so they cannot
// change load order (router/route.ts <-> route-write.ts share types that way).
const layer = (name) => `^src/${name}/`;
const forbid = (name, from, to, comment) => ({ name, comment, severity: 'error', from: { path: from }, to: { path: to } });

module.exports = {
  forbidden: [
    { name: 'no-cycles', comment: 'an import cycle makes load order and ownership unclear', severity: 'error', from: {}, to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } } },
    forbid('nothing-imports-cli', '^src/(?!cli/)', layer('cli'), 'cli/ is the outermost layer: entry points only'),
    forbid('wire-is-a-leaf', layer('wire'), '^src/(?!wire/)', 'wire/ holds pure protocol codecs: it depends on nothing else of ours'),
    forbid('sharding-is-a-leaf', layer('sharding'), '^src/(frontend|backend|router|admin|migrate|observe|cli)/', 'sharding/ is pure hashing and placement'),
    forbid('router-does-not-reach-connections', layer('router'), '^src/(frontend|backend|admin|migrate|cli)/', 'the router decides routes; it never touches a connection'),
    forbid('backend-does-not-import-upstream', layer('backend'), '^src/(frontend|router|admin|migrate|cli)/', 'the backend is downstream of the frontend and the router'),
    forbid('frontend-does-not-import-migrate', layer('frontend'), '^src/(migrate|admin|cli)/', 'migrate and admin talk to the data path through small interfaces, not the other way'),
    {
      name: 'observe-reads-through-interfaces',
      comment: 'observe/ reports what the composition root hands it (ProgressSource, MetricsSource): types only, no running code of the data path or migrate',
      severity: 'error',
      from: { path: layer('observe') },
      to: { path: '^src/(frontend|backend|router|admin|migrate|cli)/', dependencyTypesNot: ['type-only'] },
    },
    forbid('config-is-a-leaf', layer('config'), '^src/(?!config/)(?!wire/)', 'config/ loads and validates files; it knows no runtime object'),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    includeOnly: '^src/',
  },
};
