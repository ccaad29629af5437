"""The domain: the transfer form, the policy and its profiles, the step registry, the Action List,
refusal and escalation rules, and transfers, moves and POM-COM handovers in the store."""
