# Entry points; the work is done by the scripts under tools/.
.PHONY: help plan test unit sanity lint newest package molecule images standins demo venv clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

plan: venv ## Plan a Dify for this machine (embedded default inventory, changes nothing)
	@tools/plan.sh

test: ## Run every check: unit, sanity, lint (2.19 and the newest ansible-core), package, molecule
	@tools/test-all.sh

unit: venv ## Unit and property tests
	@tools/unit.sh

sanity: venv ## ansible-test sanity from an ansible_collections copy
	@tools/sanity.sh

lint: venv ## ansible-lint (production profile) and changelog lint
	@tools/lint.sh

newest: ## Unit, sanity and lint with the newest toolchain (ansible-core 2.21, Python 3.12+)
	@tools/newest.sh

package: venv ## Build, install and import-check the Galaxy tarball
	@tools/package.sh

molecule: venv ## Every molecule scenario on local podman hosts
	@tools/molecule.sh

images: ## Build the podman test host images (cached)
	@tools/build-images.sh

standins: ## Build the stand-in images the test hosts' Docker runs (cached)
	@tools/build-standins.sh

demo: venv ## Deploy the single node in a local podman test host and print its URL
	@tools/demo.sh

venv: ## Create the virtual environment from requirements/test.txt
	@tools/venv.sh

clean: ## Remove generated files
	rm -rf .cache .venv .venv-newest tests/output
