import {
  createCounter,
  createHistogram,
  createSummary,
  type PrometheusTracingPluginConfig,
} from '@graphql-yoga/plugin-prometheus';
import type { Registry } from 'prom-client';

/**
 * The `graphql_envelop_*` metrics of Yoga's prometheus plugin, the plugin's defaults with its
 * `operationName` and `path` labels off (client-chosen text would make a series per value), given
 * as its own custom-metric configs for one reason: their labels. The plugin's default label
 * function filters a fresh label object through the `labels` option (entries, filter,
 * fromEntries) for every observation, seven times per operation; here each observation gets one
 * of a few label objects made once. Names, help texts, buckets and label values are the
 * plugin's.
 */
export function graphqlMetrics(
  registry: Registry,
  deprecatedField: boolean,
): PrometheusTracingPluginConfig['metrics'] {
  const histogram = <Phase>(name: string, help: string) =>
    createHistogram<Phase, 'operationType'>({
      registry,
      histogram: { name, help, labelNames: ['operationType'] },
      fillLabelsFn: byOperationType,
    });
  return {
    graphql_envelop_request: createCounter<'execute' | 'subscribe', 'operationType'>({
      registry,
      counter: {
        name: 'graphql_envelop_request',
        help: 'Counts the amount of GraphQL requests executed through Envelop',
        labelNames: ['operationType'],
      },
      fillLabelsFn: byOperationType,
    }),
    graphql_envelop_request_duration: histogram<'execute' | 'subscribe'>(
      'graphql_envelop_request_duration',
      'Time spent on running the GraphQL operation from parse to execute',
    ),
    graphql_envelop_request_time_summary: createSummary<'execute' | 'subscribe', 'operationType'>({
      registry,
      summary: {
        name: 'graphql_envelop_request_time_summary',
        help: 'Summary to measure the time to complete GraphQL operations',
        labelNames: ['operationType'],
      },
      fillLabelsFn: byOperationType,
    }),
    graphql_envelop_phase_parse: histogram<'parse'>(
      'graphql_envelop_phase_parse',
      'Time spent on running GraphQL "parse" function',
    ),
    graphql_envelop_phase_validate: histogram<'validate'>(
      'graphql_envelop_phase_validate',
      'Time spent on running GraphQL "validate" function',
    ),
    graphql_envelop_phase_context: histogram<'context'>(
      'graphql_envelop_phase_context',
      'Time spent on building the GraphQL context',
    ),
    graphql_envelop_phase_execute: histogram<'execute'>(
      'graphql_envelop_phase_execute',
      'Time spent on running the GraphQL "execute" function',
    ),
    graphql_envelop_phase_subscribe: histogram<'subscribe'>(
      'graphql_envelop_phase_subscribe',
      'Time spent on running the GraphQL "subscribe" function',
    ),
    graphql_envelop_error_result: createCounter<
      'parse' | 'validate' | 'context' | 'execute' | 'subscribe',
      'operationType' | 'phase',
      { operationType?: string; errorPhase?: string }
    >({
      registry,
      counter: {
        name: 'graphql_envelop_error_result',
        help: 'Counts the amount of errors reported from all phases',
        labelNames: ['operationType', 'phase'],
      },
      fillLabelsFn: byTypeAndPhase,
    }),
    // Walks each operation's document with type information: only when something is deprecated.
    graphql_envelop_deprecated_field: deprecatedField,
    graphql_envelop_execute_resolver: false,
    graphql_envelop_schema_change: true,
  };
}

type Labels<K extends string> = Record<K, string | number>;

/** One label object per operation type ('undefined' is what the plugin reports before parsing). */
const typeLabels = new Map<string | undefined, Labels<'operationType'>>();

function byOperationType(params: { operationType?: string }): Labels<'operationType'> {
  let labels = typeLabels.get(params.operationType);
  if (!labels) {
    labels = { operationType: params.operationType as string };
    // Bounded: the type comes from a parsed document (query, mutation, subscription) or is absent.
    typeLabels.set(params.operationType, labels);
  }
  return labels;
}

const errorLabels = new Map<string, Labels<'operationType' | 'phase'>>();

function byTypeAndPhase(params: {
  operationType?: string;
  errorPhase?: string;
}): Labels<'operationType' | 'phase'> {
  const key = `${params.operationType}\u0000${params.errorPhase}`;
  let labels = errorLabels.get(key);
  if (!labels) {
    labels = {
      operationType: params.operationType as string,
      phase: params.errorPhase as string,
    };
    // Bounded: three operation types (or none) times five phases.
    errorLabels.set(key, labels);
  }
  return labels;
}
