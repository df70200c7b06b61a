"""Renders the services and evaluators of a template plugin."""

from __future__ import annotations

from server.generators.template_naming import (
    LINE_WIDTH,
    assign_string,
    string_property,
    ts_array,
    ts_string,
)
from server.generators.template_plan import EvaluatorPlan, ServicePlan
from server.generators.template_ts import description_of, fill, imports_block, similes_of

__all__ = ["evaluator_example_text", "render_evaluator", "render_service"]

_SERVICE_LIFECYCLE = """\
  private readonly calls = new ServiceCallLog();
  private running = false;

__START_SIGNATURE__
    const service = new __CLASS__(runtime);
    service.running = true;
    logger.info(`Service ${SERVICE_TYPE} started`);
    return service;
  }

  static override async stop(runtime: IAgentRuntime): Promise<void> {
    const service = runtime.getService<__CLASS__>(SERVICE_TYPE);
    if (service) {
      await service.stop();
    }
  }

  override async stop(): Promise<void> {
    this.running = false;
    this.calls.clear();
    logger.info(`Service ${SERVICE_TYPE} stopped`);
  }

  /** Whether the service accepts operations (between start and stop). */
  get isRunning(): boolean {
    return this.running;
  }

  /** The operations performed since the service started, oldest first. */
  history(): readonly ServiceCall[] {
    return this.calls.list();
  }
"""

_SERVICE_METHOD = """\

  /** Performs `__METHOD__` and records it in the history. */
  async __METHOD__(input: ServiceInput = {}): Promise<ServiceCall> {
    return this.perform("__METHOD__", input);
  }
"""

_SERVICE_PERFORM = """\

  private perform(method: string, input: ServiceInput): ServiceCall {
    if (!this.running) {
      throw new Error(`Service ${SERVICE_TYPE} is not running`);
    }
    logger.debug(`Service ${SERVICE_TYPE}: ${method}`);
    return this.calls.record(method, input);
  }
"""


def _start_signature(cls: str) -> str:
    line = f"  static override async start(runtime: IAgentRuntime): Promise<{cls}> {{"
    if len(line) <= LINE_WIDTH:
        return line
    return f"  static override async start(\n    runtime: IAgentRuntime,\n  ): Promise<{cls}> {{"


def render_service(service: ServicePlan) -> str:
    cls = service.export
    service_types = ["ServiceCall", "ServiceInput"] if service.methods else ["ServiceCall"]
    lines = imports_block(
        [
            ("@elizaos/core", True, ["IAgentRuntime"]),
            ("@elizaos/core", False, ["logger", "Service"]),
            ("../utils/services", True, service_types),
            ("../utils/services", False, ["ServiceCallLog"]),
        ]
    )
    lines += ["", *assign_string(0, "const SERVICE_TYPE", service.service_type), ""]
    lines.append(f"export class {cls} extends Service {{")
    lines.append("  static override serviceType = SERVICE_TYPE;")
    description = description_of(service.spec.description, "Provides", service.file)
    lines += assign_string(1, "override capabilityDescription", description)
    lines += fill(_SERVICE_LIFECYCLE, START_SIGNATURE=_start_signature(cls), CLASS=cls)
    for method in service.methods:
        lines += fill(_SERVICE_METHOD, METHOD=method)
    if service.methods:
        lines += fill(_SERVICE_PERFORM)
    lines.append("}")
    return "\n".join(lines) + "\n"


def evaluator_example_text(evaluator: EvaluatorPlan) -> str:
    """A message the evaluator's validate accepts (it mentions the first trigger)."""
    triggers = [t for t in evaluator.spec.triggers if t.strip()]
    if triggers:
        return f"Something about {triggers[0]} came up."
    return description_of(evaluator.spec.description, "Evaluate", evaluator.file)


_EVALUATOR_BODY = """\
  validate: async (_runtime, message) => shouldEvaluate(message.content.text, triggers),
  handler: async (_runtime, message): Promise<ActionResult> => {
    try {
      const matched = matchedTriggers(message.content.text, triggers);
      return {
        success: true,
        text: `${EVALUATOR_NAME} evaluated the message; triggers matched: ${matched.length}.`,
        data: {
          evaluatorName: EVALUATOR_NAME,
          matchedTriggers: matched,
          messageId: message.id,
        },
      };
    } catch (error) {
      const text = `${EVALUATOR_NAME} failed: ${errorMessage(error)}`;
      return { success: false, text, error: text };
    }
  },
};
"""


def render_evaluator(evaluator: EvaluatorPlan) -> str:
    upper = evaluator.upper
    lines = imports_block(
        [
            ("@elizaos/core", True, ["ActionResult", "Evaluator"]),
            ("../utils/actions", False, ["errorMessage"]),
            ("../utils/evaluators", False, ["matchedTriggers", "shouldEvaluate"]),
        ]
    )
    lines += ["", f"const EVALUATOR_NAME = {ts_string(upper)};", ""]
    triggers = [ts_string(t) for t in dict.fromkeys(evaluator.spec.triggers) if t.strip()]
    lines += ts_array(0, "const triggers: readonly string[] = ", triggers, ";")
    lines += ["", f"export const {evaluator.export}: Evaluator = {{", "  name: EVALUATOR_NAME,"]
    similes = [ts_string(s) for s in similes_of(evaluator.spec.name, upper)]
    lines += ts_array(1, "similes: ", similes, ",")
    description = description_of(evaluator.spec.description, "Evaluate", evaluator.file)
    lines += string_property(1, "description", description)
    lines += ["  alwaysRun: false,", "  examples: [", "    {"]
    lines += string_property(3, "prompt", f"A message for {upper} to evaluate: {description}")
    lines += ["      messages: [", "        {", '          name: "{{name1}}",']
    lines += ["          content: {"]
    lines.append(f"            text: {ts_string(evaluator_example_text(evaluator))},")
    lines += ["          },", "        },", "      ],"]
    lines += string_property(3, "outcome", f"{upper} records an evaluation of the message.")
    lines += ["    },", "  ],", *fill(_EVALUATOR_BODY)]
    return "\n".join(lines) + "\n"
