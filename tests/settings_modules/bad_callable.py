PLAN_CHECK = "tests.settings_modules.no_such_module.check"
