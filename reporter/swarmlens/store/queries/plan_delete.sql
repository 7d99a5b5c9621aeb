-- Deletes every version of a plan (a lightweight delete: the rows disappear from reads at once).
DELETE FROM {db:Identifier}.plans WHERE plan = {plan:String}
