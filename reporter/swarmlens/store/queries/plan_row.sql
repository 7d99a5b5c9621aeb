-- One plan by name, latest version.
SELECT plan, display_name, monthly_token_quota, warn_at_percent, updated_at
FROM {db:Identifier}.plans FINAL
WHERE plan = {plan:String}
