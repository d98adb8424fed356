//! Compiling an agent's strategy parameters: `min_score` (critic),
//! `samples` and `models` (consensus), `debaters` and `rounds` (debate),
//! `judge` (consensus and debate), each with its default, and each a
//! finding on an agent of another strategy (naming the strategy that takes
//! it). Debaters are recorded as agents the agent calls, for the cycle
//! check of [`super::agents`].

use super::agents::Calls;
use super::yaml::{Value, Yaml};
use super::{Ctx, Fields, did_you_mean};
use crate::ir::{ModelConfig, Span, Strategy};

/// Each strategy parameter and the strategies that take it.
const PARAMETERS: &[(&str, &[Strategy])] = &[
    ("min_score", &[Strategy::Critic]),
    ("samples", &[Strategy::Consensus]),
    ("models", &[Strategy::Consensus]),
    ("debaters", &[Strategy::Debate]),
    ("rounds", &[Strategy::Debate]),
    ("judge", &[Strategy::Consensus, Strategy::Debate]),
];

/// An agent's strategy parameters, defaults applied.
#[derive(Default)]
pub(super) struct Parameters {
    pub min_score: Option<u8>,
    pub samples: Option<u32>,
    pub models: Vec<(String, ModelConfig)>,
    pub debaters: Vec<String>,
    pub rounds: Option<u32>,
    pub judge: Option<(String, ModelConfig)>,
}

impl Ctx {
    /// The strategy's parameters, defaults applied; a parameter of another
    /// strategy is a finding naming the strategy that takes it.
    pub(super) fn parameters(
        &mut self,
        agent: &str,
        f: &Fields,
        strategy: Strategy,
        model: Option<&(String, ModelConfig)>,
        calls: &mut Calls,
    ) -> Option<Parameters> {
        let mut misplaced = false;
        for (field, takes) in PARAMETERS {
            if let Some(e) = f.entry(field).filter(|_| !takes.contains(&strategy)) {
                let takes: Vec<String> = takes.iter().map(|s| format!("`strategy: {}`", s.as_str())).collect();
                let message = format!(
                    "`{field}` applies only to {} (agent `{agent}` has `strategy: {}`)",
                    takes.join(" or "),
                    strategy.as_str()
                );
                self.add(e.key_span, message);
                misplaced = true;
            }
        }
        let parameters = match strategy {
            Strategy::Critic => self.critic(f),
            Strategy::Consensus => self.consensus(f, model),
            Strategy::Debate => self.debate(agent, f, model, calls),
            Strategy::React | Strategy::PlanAndExecute | Strategy::Reflection => Some(Parameters::default()),
        };
        parameters.filter(|_| !misplaced)
    }

    /// `min_score`: 1 to 5, default 4.
    fn critic(&mut self, f: &Fields) -> Option<Parameters> {
        let min_score = f.get("min_score").map_or(Some(4), |y| self.int_within(y, "min_score", 1, 5))?;
        Some(Parameters { min_score: Some(u8::try_from(min_score).ok()?), ..Parameters::default() })
    }

    /// `samples` (2 to 16, default 3), `models` to spread them over (no
    /// more than there are samples), `judge`.
    fn consensus(&mut self, f: &Fields, model: Option<&(String, ModelConfig)>) -> Option<Parameters> {
        let samples = f.get("samples").map_or(Some(3), |y| self.int_within(y, "samples", 2, 16));
        let models = f.get("models").map_or(Some(Vec::new()), |y| self.model_list(y));
        if let (Some(samples), Some(models), Some(y)) = (samples, &models, f.get("models"))
            && models.len() as u64 > samples
        {
            let message = format!(
                "`models` lists {} models but `samples` is {samples}: each model needs at least one sample",
                models.len()
            );
            self.add(y.span, message);
            return None;
        }
        let judge = self.judge(f, model);
        Some(Parameters {
            samples: Some(u32::try_from(samples?).ok()?),
            models: models?,
            judge: Some(judge?),
            ..Parameters::default()
        })
    }

    /// `debaters` (at least two other agents), `rounds` (1 to 10, default
    /// 2), `judge`.
    fn debate(
        &mut self,
        agent: &str,
        f: &Fields,
        model: Option<&(String, ModelConfig)>,
        calls: &mut Calls,
    ) -> Option<Parameters> {
        let debaters = match f.entry("debaters") {
            Some(e) => self.debaters(agent, &e.value, calls),
            None => {
                let at = f.entry("strategy").map_or(Span::default(), |e| e.value.span);
                self.add(at, format!("agent `{agent}` has `strategy: debate` but no `debaters` (at least two agents)"));
                None
            }
        };
        let rounds = f.get("rounds").map_or(Some(2), |y| self.int_within(y, "rounds", 1, 10));
        let judge = self.judge(f, model);
        Some(Parameters {
            debaters: debaters?,
            rounds: Some(u32::try_from(rounds?).ok()?),
            judge: Some(judge?),
            ..Parameters::default()
        })
    }

    /// `debaters`: at least two different agents of `agents:`, not `agent`.
    fn debaters(&mut self, agent: &str, y: &Yaml, calls: &mut Calls) -> Option<Vec<String>> {
        let Value::Seq(items) = &y.value else {
            self.add(y.span, format!("`debaters` must be a list of agents of `agents:`, found {}", y.kind()));
            return None;
        };
        let mut debaters = Some(Vec::with_capacity(items.len()));
        for item in items {
            let Some(name) = self.debater(agent, item) else {
                debaters = None;
                continue;
            };
            calls.push((name.clone(), item.span));
            if let Some(list) = debaters.as_mut() {
                if list.contains(&name) {
                    self.add(item.span, format!("`debaters` names `{name}` twice"));
                }
                list.push(name);
            }
        }
        if items.len() < 2 {
            self.add(y.span, format!("`debaters` must name at least two agents, found {}", items.len()));
            return None;
        }
        debaters
    }

    /// One debater: an agent of `agents:` other than `agent`.
    fn debater(&mut self, agent: &str, y: &Yaml) -> Option<String> {
        let name = self.string(y, "debaters")?;
        if name == agent {
            self.add(y.span, format!("agent `{agent}` names itself as a debater: its debaters are other agents"));
            return None;
        }
        if !self.agent_names.contains(&name) {
            let hint = did_you_mean(&name, self.agent_names.iter().map(String::as_str));
            self.add(y.span, format!("debater `{name}` is not an agent of `agents:`{hint}"));
            return None;
        }
        Some(name)
    }

    /// `judge`: a model, by default the agent's own.
    fn judge(&mut self, f: &Fields, model: Option<&(String, ModelConfig)>) -> Option<(String, ModelConfig)> {
        match f.get("judge") {
            Some(y) => self.model_named(y, "judge", "judge: "),
            None => model.cloned(),
        }
    }

    /// `models:` of a consensus: at least one, each resolved.
    fn model_list(&mut self, y: &Yaml) -> Option<Vec<(String, ModelConfig)>> {
        let Value::Seq(items) = &y.value else {
            self.add(y.span, format!("`models` must be a list of models, found {}", y.kind()));
            return None;
        };
        if items.is_empty() {
            self.add(y.span, "`models` must name at least one model");
            return None;
        }
        let models: Vec<_> = items.iter().map(|item| self.model_named(item, "models", "")).collect();
        models.into_iter().collect()
    }
}
