//! Test fixture: a library that claims plugin ABI 1.0.0 but whose root module has another layout (its
//! constructor returns a number, not a plugin) — the runtime must refuse it before calling anything.
#![allow(non_local_definitions, non_camel_case_types)]

use abi_stable::{
    declare_root_module_statics, export_root_module, library::RootModule, prefix_type::PrefixTypeTrait,
    sabi_types::VersionStrings, StableAbi,
};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    #[sabi(last_prefix_field)]
    pub new: extern "C" fn() -> u64,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "avs_plugin";
    const NAME: &'static str = "avs_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.0.0");
}

extern "C" fn new_instance() -> u64 {
    1
}

#[export_root_module]
fn root_module() -> PluginModule_Ref {
    PluginModule { new: new_instance }.leak_into_prefix()
}
