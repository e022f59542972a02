/**
 * A deterministic synthetic tenant: realistic audit records across the five content types and many
 * workloads (reference §6, §7). Shapes follow Microsoft's schema docs and the public samples in
 * /work/shared/fixtures; values are invented. The set deliberately carries JSON edge cases a
 * collector must pass through untouched: nested objects and arrays, `{}` and `[]`, nulls, integers
 * up to 2^53-1, accents/CJK/emoji, control characters, quotes and backslashes, JSON inside a string
 * field, and a few records without `Workload`.
 */
import type { BlobBody } from './content-store.ts';
import { renderRecords } from './corpus.ts';
import { Rng } from './prng.ts';
import { blobSize, planBlobTimes, type ScheduleOptions } from './schedule.ts';
import type { AuditRecord, ContentType } from './types.ts';

interface User {
  name: string;
  upn: string;
  objectId: string;
  puid: string;
}

/** Everything generators share: the tenant, its people, and the random stream. */
interface Tenant {
  rng: Rng;
  tenantId: string;
  domain: string;
  users: User[];
  ids: Set<string>;
}

const PEOPLE: readonly (readonly [string, string])[] = [
  ['Adele Vance', 'adele.vance'],
  ['Alex Wilber', 'alex.wilber'],
  ['Diego Siciliani', 'diego.siciliani'],
  ['Grady Archie', 'grady.archie'],
  ['Isaiah Langer', 'isaiah.langer'],
  ['Johanna Lorenz', 'johanna.lorenz'],
  ['Lee Gu', 'lee.gu'],
  ['Lidia Holloway', 'lidia.holloway'],
  ['Megan Bowen', 'megan.bowen'],
  ['Nestor Wilke', 'nestor.wilke'],
  ['Patti Fernandez', 'patti.fernandez'],
  ['Pradeep Gupta', 'pradeep.gupta'],
  ['José Álvarez', 'jose.alvarez'],
  ['Zoë Müller', 'zoe.mueller'],
  ['François Dupré', 'francois.dupre'],
  ['Søren Ångström', 'soren.angstrom'],
  ['Łukasz Żółkiewski', 'lukasz.zolkiewski'],
  ['Ana Núñez', 'ana.nunez'],
  ['李娜', 'li.na'],
  ['田中 太郎', 'taro.tanaka'],
  ['김민준', 'minjun.kim'],
  ["Siobhán O'Brien", 'siobhan.obrien'],
];

const TENANT_NAMES = ['contoso', 'fabrikam', 'northwind', 'adatum', 'tailspin', 'woodgrove', 'litware', 'proseware'];
const REGIONS = ['emea0036', 'emea0021', 'na0030', 'na0017', 'apac0004'];

const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)',
  'Microsoft SkyDriveSync 24.076.0414.0001 ship; Windows NT 10.0 (19045)',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Teams/6.6.0',
  'python-requests/2.31.0',
  'MSAL.NetCore/4.60.3.0 MSAL.NetCore/4.60.3.0',
];

const FILES = [
  'Q3 budget (final).xlsx',
  'Übersicht Verträge 2024.docx',
  'Présentation client — v2.pptx',
  '会议记录 2024-05.docx',
  'Roadmap 🚀 FY25.pptx',
  'payroll_export.csv',
  'Contract "Northwind" signed.pdf',
  'notes\\old\\readme.txt',
  'Résumé Zoë.pdf',
  'architecture-diagram.vsdx',
  '見積書_最終版.xlsx',
  'incident-report.md',
];

const SUBJECTS = [
  'Re: Quarterly review',
  'Invoice #48213 — payment overdue',
  'Urgent: verify your account',
  'Déjeuner vendredi ? 🍽️',
  '来週の会議について',
  'FW: "Confidential" board deck',
  'Tab\tseparated\tsubject',
  'Line one\nline two',
  'Path C:\\Users\\shared\\report.xlsx',
  'Bell\u0007 and escape\u001b characters',
  'Ünïcödé ✓ ☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
];

const TEAMS = ['Équipe Produit 🚀', 'Finance & Ops', '研发团队', 'Sales — EMEA', 'IT Helpdesk', 'Project "Falcon"'];

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** `YYYY-MM-DDTHH:MM:SS`, UTC, without `Z` — how CreationTime appears on the wire (reference §7.1). */
export function creationTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

function uniqueId(t: Tenant): string {
  let id = t.rng.guid();
  while (t.ids.has(id)) id = t.rng.guid();
  t.ids.add(id);
  return id;
}

function ipv4(rng: Rng): string {
  return `${rng.pick([20, 40, 52, 81, 86, 104, 145, 176, 185, 203])}.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`;
}

function ipv6(rng: Rng): string {
  return `2a01:${rng.hex(4)}:${rng.hex(4)}:${rng.hex(2)}00::${rng.hex(3)}`;
}

/** ClientIP wire variants seen in real data (reference §7.1): plain, with port, bracketed IPv6, mapped. */
function clientIp(rng: Rng): string {
  const r = rng.next();
  if (r < 0.6) return ipv4(rng);
  if (r < 0.75) return ipv6(rng);
  if (r < 0.87) return `${ipv4(rng)}:${rng.int(1024, 65535)}`;
  if (r < 0.95) return `[${ipv6(rng)}]:${rng.int(1024, 65535)}`;
  return `::ffff:${ipv4(rng)}`;
}

function puid(rng: Rng): string {
  return `1003${rng.hex(12).toUpperCase()}`;
}

interface Ctx {
  t: Tenant;
  ms: number;
  user: User;
}

/** The common schema fields, in the order the service writes them (reference §7.1). */
function common(
  c: Ctx,
  f: { recordType: number; operation: string; workload: string; resultStatus?: string; userKey?: string; userType?: number; objectId?: string; userId?: string; clientIp?: string | null },
): AuditRecord {
  const r: AuditRecord = {
    CreationTime: creationTime(c.ms),
    Id: uniqueId(c.t),
    Operation: f.operation,
    OrganizationId: c.t.tenantId,
    RecordType: f.recordType,
  };
  if (f.resultStatus !== undefined) r['ResultStatus'] = f.resultStatus;
  r['UserKey'] = f.userKey ?? c.user.puid;
  r['UserType'] = f.userType ?? 0;
  r['Version'] = 1;
  r['Workload'] = f.workload;
  if (f.clientIp !== undefined) r['ClientIP'] = f.clientIp;
  if (f.objectId !== undefined) r['ObjectId'] = f.objectId;
  r['UserId'] = f.userId ?? c.user.upn;
  return r;
}

function appAccessContext(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  if (rng.chance(0.15)) return {};
  return {
    AADSessionId: rng.guid(),
    ClientAppId: rng.pick(['00000002-0000-0ff1-ce00-000000000000', '1fec8e78-bce4-4aaf-ab1b-5451cc387264', 'd3590ed6-52b3-4102-aeff-aad2292ab01c']),
    ClientAppName: rng.pick(['Office 365 Exchange Online', 'Microsoft Teams', 'Microsoft Office']),
    CorrelationId: rng.guid(),
    IssuedAtTime: creationTime(c.ms - rng.int(60, 3000) * 1000),
    UniqueTokenId: rng.hex(22),
  };
}

// ---------------------------------------------------------------- Audit.AzureActiveDirectory

const APPS = [
  ['00000003-0000-0ff1-ce00-000000000000', 'Office 365 SharePoint Online'],
  ['00000002-0000-0ff1-ce00-000000000000', 'Office 365 Exchange Online'],
  ['cc15fd57-2c6c-4117-a88c-83b1d56b4bbe', 'Microsoft Teams Services'],
  ['00000003-0000-0000-c000-000000000000', 'Microsoft Graph'],
] as const;

function aadLogon(c: Ctx, failed: boolean): AuditRecord {
  const rng = c.t.rng;
  const [appId] = rng.pick(APPS);
  // Some service-originated sign-ins carry no client address at all (reference §7.1: ClientIP null).
  const ip = rng.chance(0.12) ? null : ipv4(rng);
  const r = common(c, {
    recordType: 15,
    operation: failed ? 'UserLoginFailed' : 'UserLoggedIn',
    workload: 'AzureActiveDirectory',
    resultStatus: failed ? 'Failed' : 'Success',
    userKey: c.user.objectId,
    clientIp: ip,
    objectId: appId,
  });
  Object.assign(r, {
    AzureActiveDirectoryEventType: 1,
    ExtendedProperties: [
      { Name: 'ResultStatusDetail', Value: failed ? 'Success' : rng.pick(['Redirect', 'Success']) },
      { Name: 'UserAgent', Value: rng.pick(USER_AGENTS) },
      { Name: 'RequestType', Value: rng.pick(['OAuth2:Authorize', 'OAuth2:Token', 'Login:login', 'SAS:ProcessAuth']) },
      ...(rng.chance(0.5) ? [{ Name: 'KeepMeSignedIn', Value: 'true' }] : []),
    ],
    ModifiedProperties: [],
    Actor: [
      { ID: c.user.objectId, Type: 0 },
      { ID: c.user.upn, Type: 5 },
    ],
    ActorContextId: c.t.tenantId,
    ActorIpAddress: ip,
    InterSystemsId: rng.guid(),
    IntraSystemId: rng.guid(),
    SupportTicketId: '',
    Target: [{ ID: appId, Type: 0 }],
    TargetContextId: c.t.tenantId,
    ApplicationId: rng.pick(['89bee1f7-5e6e-4d8a-9f3d-ecd601259da7', '1fec8e78-bce4-4aaf-ab1b-5451cc387264', '4765445b-32c6-49b0-83e6-1d93765276ca']),
    DeviceProperties: [
      { Name: 'OS', Value: rng.pick(['Windows 10', 'MacOs', 'Ios', 'Android']) },
      { Name: 'BrowserType', Value: rng.pick(['Edge', 'Chrome', 'Safari', 'Firefox']) },
      { Name: 'IsCompliantAndManaged', Value: rng.pick(['False', 'True']) },
      { Name: 'SessionId', Value: rng.guid() },
    ],
    ErrorNumber: failed ? rng.pick(['50126', '50074', '50053', '530032']) : '0',
  });
  if (failed) r['LogonError'] = rng.pick(['InvalidUserNameOrPassword', 'UserStrongAuthClientAuthNRequiredInterrupt', 'IdsLocked']);
  return r;
}

function aadAdmin(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const target = rng.pick(c.t.users);
  const op = rng.pick(['Add member to role.', 'Update user.', 'Add service principal credentials.', 'Reset user password.']);
  const r = common(c, {
    recordType: 8,
    operation: op,
    workload: 'AzureActiveDirectory',
    resultStatus: 'Success',
    userKey: `${c.user.puid}@${c.t.domain}`,
    userType: 0,
    objectId: target.upn,
  });
  // Entra writes old/new values as pretty-printed JSON arrays inside strings, with \r\n.
  const role = rng.pick(['Global Administrator', 'Exchange Administrator', 'Security Reader']);
  const modified =
    op === 'Add member to role.'
      ? [
          { Name: 'Role.ObjectID', NewValue: rng.guid(), OldValue: '' },
          { Name: 'Role.DisplayName', NewValue: role, OldValue: '' },
          { Name: 'Role.WellKnownObjectName', NewValue: role.replace(/ /g, ''), OldValue: '' },
        ]
      : op === 'Update user.'
        ? [
            { Name: 'StrongAuthenticationPhoneAppDetail', NewValue: `[\r\n  {\r\n    "DeviceName": "iPhone de ${target.name}",\r\n    "DeviceToken": "${rng.hex(32)}"\r\n  }\r\n]`, OldValue: '[]' },
            { Name: 'Included Updated Properties', NewValue: 'StrongAuthenticationPhoneAppDetail', OldValue: '' },
          ]
        : [];
  Object.assign(r, {
    AzureActiveDirectoryEventType: 1,
    ExtendedProperties: [
      { Name: 'additionalDetails', Value: '{}' },
      { Name: 'extendedAuditEventCategory', Value: 'User' },
    ],
    ModifiedProperties: modified,
    Actor: [
      { ID: `${c.user.upn}`, Type: 5 },
      { ID: c.user.puid, Type: 3 },
      { ID: `User_${c.user.objectId}`, Type: 2 },
    ],
    ActorContextId: c.t.tenantId,
    InterSystemsId: rng.guid(),
    IntraSystemId: rng.guid(),
    SupportTicketId: '',
    Target: [
      { ID: `User_${target.objectId}`, Type: 2 },
      { ID: target.upn, Type: 5 },
    ],
    TargetContextId: c.t.tenantId,
  });
  return r;
}

function aadRecord(c: Ctx): AuditRecord {
  const r = c.t.rng.next();
  if (r < 0.6) return aadLogon(c, false);
  if (r < 0.85) return aadLogon(c, true);
  return aadAdmin(c);
}

// ---------------------------------------------------------------- Audit.Exchange

function originatingServer(rng: Rng): string {
  // The service really appends "\r\n" to this field.
  return `${rng.pick(['AM6PR05', 'DB9PR08', 'VI1PR09', 'BN8PR12'])}MB${rng.int(1000, 9999)} (15.20.${rng.int(7000, 7999)}.0${rng.int(10, 99)})\r\n`;
}

function mailboxFields(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  return {
    AppAccessContext: appAccessContext(c),
    ClientIPAddress: clientIp(rng),
    ClientInfoString: rng.pick(['Client=OWA;Action=ViaProxy', 'Client=REST;Client=RESTSystem;;', 'Client=MSExchangeRPC', 'Client=OutlookService;Outlook-iOS/2.0;']),
    ExternalAccess: false,
    InternalLogonType: 0,
    LogonType: 0,
    LogonUserSid: `S-1-5-21-${rng.int(1e9, 4e9)}-${rng.int(1e9, 4e9)}-${rng.int(1e9, 4e9)}-${rng.int(1000, 99999)}`,
    MailboxGuid: rng.guid(),
    MailboxOwnerSid: `S-1-5-21-${rng.int(1e9, 4e9)}-${rng.int(1e9, 4e9)}-${rng.int(1e9, 4e9)}-${rng.int(1000, 99999)}`,
    MailboxOwnerUPN: c.user.upn,
    OrganizationName: c.t.domain,
    OriginatingServer: originatingServer(rng),
    SessionId: rng.guid(),
  };
}

function messageId(rng: Rng, domain: string): string {
  return `<${rng.hex(12).toUpperCase()}@${rng.pick(['AM6PR05MB', 'DB9PR08MB'])}${rng.int(1000, 9999)}.eurprd05.prod.outlook.com>`.replace('@', `.${domain.split('.')[0]}@`);
}

function exchangeRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const kind = rng.weighted([
    ['MailItemsAccessed', 5],
    ['Send', 2],
    ['Set-Mailbox', 1],
    ['New-InboxRule', 1],
  ] as const);
  if (kind === 'Set-Mailbox' || kind === 'New-InboxRule') {
    const target = rng.pick(c.t.users);
    const r = common(c, {
      recordType: 1,
      operation: kind,
      workload: 'Exchange',
      resultStatus: rng.pick(['True', 'True', 'False']),
      userKey: c.user.puid,
      userType: 2,
      clientIp: clientIp(rng),
      objectId: `EURPR05A001.prod.outlook.com/Microsoft Exchange Hosted Organizations/${c.t.domain}/${target.upn.split('@')[0]}`,
    });
    const parameters =
      kind === 'Set-Mailbox'
        ? [
            { Name: 'Identity', Value: target.upn },
            { Name: 'ForwardingSmtpAddress', Value: `smtp:${target.upn.split('@')[0]}@external-mail.example` },
            { Name: 'DeliverToMailboxAndForward', Value: 'True' },
          ]
        : [
            { Name: 'Mailbox', Value: target.upn },
            { Name: 'Name', Value: rng.pick(['Move "invoices"\tto RSS', '.', '..', 'Règle de tri — factures']) },
            { Name: 'SubjectOrBodyContainsWords', Value: 'payment;invoice;übersicht;"wire transfer"' },
            { Name: 'MoveToFolder', Value: '\\RSS Feeds' },
            { Name: 'MarkAsRead', Value: 'True' },
            { Name: 'StopProcessingRules', Value: 'True' },
          ];
    Object.assign(r, {
      AppId: rng.pick(['', 'fb78d390-0c51-40cd-8e17-fdbfab77341b']),
      ClientAppId: '',
      ExternalAccess: false,
      OrganizationName: c.t.domain,
      OriginatingServer: originatingServer(rng),
      Parameters: parameters,
      RequestId: rng.guid(),
      SessionId: rng.guid(),
    });
    return r;
  }
  const r = common(c, {
    recordType: kind === 'Send' ? 2 : 50,
    operation: kind,
    workload: 'Exchange',
    resultStatus: 'Succeeded',
    clientIp: clientIp(rng),
  });
  Object.assign(r, mailboxFields(c));
  if (kind === 'Send') {
    r['Item'] = {
      Id: `Rg${rng.hex(40)}AAAJ`,
      InternetMessageId: messageId(rng, c.t.domain),
      ParentFolder: { Id: `Lg${rng.hex(30)}AAAB`, Path: '\\Sent Items' },
      SizeInBytes: rng.int(2_000, 25_000_000),
      Subject: rng.pick(SUBJECTS),
      Attachments: rng.chance(0.3) ? `${rng.pick(FILES)} (${rng.int(10, 9000)}b)` : '',
    };
  } else {
    const folders = [];
    const nf = rng.int(1, 3);
    for (let i = 0; i < nf; i++) {
      const items = [];
      const ni = rng.int(1, 6);
      for (let j = 0; j < ni; j++) items.push({ InternetMessageId: messageId(rng, c.t.domain), SizeInBytes: rng.int(3_000, 500_000) });
      folders.push({ FolderItems: items, Id: `LgAAAA${rng.hex(40)}AAAB`, Path: rng.pick(['\\Inbox', '\\Archive', '\\Inbox\\Finance', '\\Éléments envoyés']) });
    }
    r['Folders'] = folders;
    r['OperationCount'] = folders.reduce((n, f) => n + f.FolderItems.length, 0);
    r['OperationProperties'] = [
      { Name: 'MailAccessType', Value: rng.pick(['Bind', 'Sync']) },
      { Name: 'IsThrottled', Value: 'False' },
    ];
  }
  return r;
}

// ---------------------------------------------------------------- Audit.SharePoint

function sharePointRecord(c: Ctx, forceWorkload?: string): AuditRecord {
  const rng = c.t.rng;
  const workload = forceWorkload ?? (rng.chance(0.45) ? 'OneDrive' : 'SharePoint');
  const op = rng.weighted([
    ['FileAccessed', 6],
    ['FileDownloaded', 3],
    ['FileModified', 2],
    ['FileUploaded', 2],
    ['SharingSet', 1],
    ['AnonymousLinkCreated', 1],
  ] as const);
  const file = rng.pick(FILES);
  const tenantName = c.t.domain.split('.')[0]!;
  const site =
    workload === 'OneDrive'
      ? `https://${tenantName}-my.sharepoint.com/personal/${c.user.upn.replace(/[@.]/g, '_')}/`
      : `https://${tenantName}.sharepoint.com/sites/${rng.pick(['Finance', 'HR', 'Marketing', 'Engineering', 'Direction-Générale'])}/`;
  const folder = rng.pick(['Shared Documents', 'Documents', 'Shared Documents/Contrats 2024', 'Freigegebene Dokumente']);
  const ext = file.includes('.') ? file.slice(file.lastIndexOf('.') + 1) : '';
  const sharing = op === 'SharingSet' || op === 'AnonymousLinkCreated';
  const r = common(c, {
    recordType: sharing ? 14 : 6,
    operation: op,
    workload,
    userKey: `i:0h.f|membership|${c.user.puid.toLowerCase()}@live.com`,
    clientIp: clientIp(rng),
    objectId: `${site}${folder}/${file}`,
  });
  Object.assign(r, {
    CorrelationId: rng.guid(),
    EventSource: 'SharePoint',
    ItemType: 'File',
    ListId: rng.guid(),
    ListItemUniqueId: rng.guid(),
    Site: rng.guid(),
    UserAgent: rng.pick(USER_AGENTS),
    WebId: rng.guid(),
    GeoLocation: rng.pick(['EUR', 'NAM', 'APC']),
    IsManagedDevice: rng.chance(0.4),
    DeviceDisplayName: rng.chance(0.3) ? `DESKTOP-${rng.hex(7).toUpperCase()}` : null,
    HighPriorityMediaProcessing: false,
    ApplicationDisplayName: rng.pick(['Microsoft Office', 'OneDrive SyncEngine', 'Microsoft Teams', 'SharePoint Online Web Client Extensibility']),
    Platform: rng.pick(['WinDesktop', 'MacDesktop', 'iOS', 'Android', 'WebBrowser']),
    SourceFileExtension: ext,
    SiteUrl: site,
    SourceFileName: file,
    SourceRelativeUrl: folder,
  });
  if (!sharing) {
    // The largest integer JSON numbers can carry exactly; a collector that goes through a lossy
    // number type (float32, some msgpack paths) will corrupt it.
    r['FileSizeBytes'] = rng.chance(0.02) ? Number.MAX_SAFE_INTEGER : rng.int(100, 400_000_000);
  } else {
    Object.assign(r, {
      TargetUserOrGroupType: op === 'AnonymousLinkCreated' ? 'AnonymousUser' : rng.pick(['Member', 'Guest', 'SharePointGroup']),
      TargetUserOrGroupName: op === 'AnonymousLinkCreated' ? 'Anonymous' : `${rng.pick(['partner', 'vendor', 'ext'])}@${rng.pick(['gmail.com', 'outlook.com', 'example.org'])}`,
      EventData: `<Type>${rng.pick(['Edit', 'View'])}</Type><MembersCanShare>Yes</MembersCanShare>`,
      ModifiedProperties: [],
    });
  }
  return r;
}

// ---------------------------------------------------------------- Audit.General

function teamsRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const op = rng.pick(['MemberAdded', 'TeamCreated', 'ChannelAdded', 'MeetingDetail']);
  const team = rng.pick(TEAMS);
  const member = rng.pick(c.t.users);
  const r = common(c, {
    recordType: 25,
    operation: op,
    workload: 'MicrosoftTeams',
    clientIp: clientIp(rng),
    userKey: c.user.objectId,
    objectId: op === 'MeetingDetail' ? `${rng.hex(24)}` : undefined,
  });
  Object.assign(r, {
    CommunicationType: 'Team',
    AADGroupId: rng.guid(),
    TeamGuid: `19:${rng.hex(32)}@thread.tacv2`,
    TeamName: team,
    ItemName: team,
    Members:
      op === 'MemberAdded'
        ? [{ DisplayName: member.name, Role: rng.int(1, 2), UPN: member.upn }]
        : [],
    AppAccessContext: appAccessContext(c),
  });
  if (op === 'ChannelAdded') Object.assign(r, { ChannelName: rng.pick(['Général', 'Incidents 🔥', 'Line1\nLine2']), ChannelType: 'Standard', ChannelGuid: `19:${rng.hex(32)}@thread.tacv2` });
  if (op === 'MeetingDetail') {
    Object.assign(r, {
      Attendees: [
        { DisplayName: member.name, OrganizationId: c.t.tenantId, RecipientType: 'User', UPN: member.upn },
        { DisplayName: 'Guest (External)', OrganizationId: null, RecipientType: 'Anonymous', UPN: null },
      ],
      StartTime: creationTime(c.ms - 3_600_000),
      EndTime: creationTime(c.ms - 60_000),
      JoinTime: creationTime(c.ms - 3_500_000),
      MeetingURL: `https://teams.microsoft.com/l/meetup-join/19%3ameeting_${rng.hex(40)}%40thread.v2/0?context=%7b%22Tid%22%3a%22${c.t.tenantId}%22%7d`,
    });
  }
  return r;
}

function powerBiRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const op = rng.pick(['ViewReport', 'ExportReport', 'ViewDashboard', 'ShareReport']);
  const report = rng.pick(['Sales KPI', 'Rentabilité par région', '財務サマリー', 'Pipeline "hot" deals']);
  const r = common(c, { recordType: 20, operation: op, workload: 'PowerBI', clientIp: clientIp(rng), userKey: c.user.puid, objectId: report });
  Object.assign(r, {
    UserAgent: rng.pick(USER_AGENTS),
    Activity: op,
    ItemName: report,
    WorkSpaceName: rng.pick(['Finance', 'My workspace', 'Direction']),
    DatasetName: report,
    ReportName: report,
    CapacityId: rng.guid().toUpperCase(),
    CapacityName: 'Premium Per User - Reserved',
    WorkspaceId: rng.guid(),
    ObjectId: report,
    DatasetId: rng.guid(),
    ReportId: rng.guid(),
    ArtifactId: rng.guid(),
    ArtifactName: report,
    IsSuccess: true,
    ReportType: 'PowerBIReport',
    RequestId: rng.guid(),
    ActivityId: rng.guid(),
    DistributionMethod: rng.pick(['Workspace', 'Shared', 'App']),
    ConsumptionMethod: 'Power BI Web',
    ArtifactKind: 'Report',
    RefreshEnforcementPolicy: 0,
  });
  if (op === 'ExportReport') r['ExportEventActivityTypeParameter'] = 'ExportReportToPdf';
  return r;
}

function yammerRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const r = common(c, { recordType: 22, operation: rng.pick(['MessageCreated', 'FileVisited', 'MessageUpdated']), workload: 'Yammer', userKey: c.user.objectId, objectId: undefined });
  Object.assign(r, {
    ActorUserId: c.user.upn,
    ActorYammerUserId: rng.int(1_000_000_000, 9_000_000_000_000),
    GroupName: rng.pick(TEAMS),
    MessageId: rng.int(1_000_000_000_000, 2 ** 52),
    YammerNetworkId: rng.int(100_000, 99_999_999),
    ThreadId: rng.int(1_000_000_000_000, 2 ** 52),
  });
  return r;
}

function flowRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const flowId = rng.guid();
  const r = common(c, { recordType: 30, operation: rng.pick(['CreateFlow', 'EditFlow', 'PutPermissions']), workload: 'MicrosoftFlow', resultStatus: 'Succeeded', userKey: c.user.objectId, objectId: flowId });
  Object.assign(r, {
    FlowConnectorNames: rng.pick(['Office 365 Outlook, SharePoint', 'HTTP, OneDrive for Business', 'Microsoft Teams, Approvals']),
    FlowDetailsUrl: `https://make.powerautomate.com/environments/Default-${c.t.tenantId}/flows/${flowId}/details`,
    LicenseDisplayName: '',
    RecipientUPN: '',
    SharingPermission: 0,
    UserTypeInitiated: 1,
    UserUPN: c.user.upn,
  });
  return r;
}

function formsRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const name = rng.pick(['Encuesta de satisfacción 😊', 'IT survey', 'Inscription séminaire', '社内アンケート']);
  const r = common(c, { recordType: 66, operation: rng.pick(['CreateForm', 'ViewResponses', 'EditForm']), workload: 'MicrosoftForms', userKey: c.user.objectId, clientIp: clientIp(rng), objectId: rng.hex(40) });
  Object.assign(r, { FormsUserType: rng.pick(['Admin', 'Owner', 'Responder']), SourceApp: 'Microsoft Forms', FormName: name, FormId: rng.hex(40), FormTypes: ['Form'], ActivityParameters: '{"FormTitle":' + JSON.stringify(name) + '}' });
  return r;
}

function sccAlertRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const victim = rng.pick(c.t.users);
  const alertId = rng.guid();
  const r = common(c, {
    recordType: 40,
    operation: 'AlertTriggered',
    workload: 'SecurityComplianceCenter',
    resultStatus: 'Succeeded',
    userKey: 'SecurityComplianceAlerts',
    userType: 4,
    objectId: alertId,
    userId: 'SecurityComplianceAlerts',
  });
  // `Data` is a JSON document serialised into a string (reference §7.1, alerts).
  const data = {
    etype: 'User',
    eid: victim.upn,
    op: 'UserSubmission',
    tdc: String(rng.int(1, 5)),
    suid: victim.upn,
    ut: 'Regular',
    ts: `${creationTime(c.ms - 600_000)}.${rng.int(1000000, 9999999)}Z`,
    te: `${creationTime(c.ms - 60_000)}.${rng.int(1000000, 9999999)}Z`,
    sev: rng.pick(['Low', 'Medium', 'High', 'Informational']),
    mat: 'Suspicious "link" in mail — C:\\temp\\x.html',
    pol: rng.pick(['Email messages containing malicious URL removed after delivery', 'User restricted from sending email']),
    ulid: [],
    tags: {},
  };
  Object.assign(r, {
    AlertEntityId: victim.upn,
    AlertId: alertId,
    AlertLinks: [{ AlertLinkHref: `https://security.microsoft.com/viewalerts?id=${alertId}` }],
    AlertType: 'System',
    Category: 'ThreatManagement',
    Comments: 'New alert',
    Data: JSON.stringify(data),
    EntityType: 'User',
    Name: data.pol,
    PolicyId: rng.guid(),
    Severity: data.sev,
    Source: 'Office 365 Security & Compliance',
    Status: 'Active',
  });
  return r;
}

function threatIntelRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const recipient = rng.pick(c.t.users);
  const nmid = rng.guid();
  const r = common(c, {
    recordType: 28,
    operation: 'TIMailData',
    workload: 'ThreatIntelligence',
    userKey: 'ThreatIntel',
    userType: 4,
    objectId: rng.guid(),
    userId: 'ThreatIntel',
  });
  Object.assign(r, {
    AttachmentData: rng.chance(0.5) ? [] : [{ FileName: rng.pick(FILES), FileType: 'zip', FileVerdict: 1, MalwareFamily: 'Trojan:Win32/Wacatac', SHA256: rng.hex(64) }],
    DeliveryAction: rng.pick(['Blocked', 'Delivered', 'DeliveredAsSpam']),
    DetectionMethod: rng.pick(['URL detonation reputation', 'Advanced filter', 'Impersonation user']),
    DetectionType: 'Inline',
    Directionality: 'Inbound',
    EventDeepLink: `https://security.microsoft.com/?hid=${rng.guid()}&nmid=${nmid}&recipient=${encodeURIComponent(recipient.upn)}&siteMode=Pages`,
    InternetMessageId: messageId(rng, 'phish.example'),
    MessageTime: `${creationTime(c.ms - rng.int(1, 120) * 1000)}`,
    NetworkMessageId: nmid,
    P1Sender: `billing@${rng.pick(['micros0ft-support.example', 'paypa1.example', 'dhl-track.example'])}`,
    P2Sender: 'no-reply@billing.example',
    Policy: 1,
    PolicyAction: 5,
    Recipients: [recipient.upn],
    SenderIp: ipv4(rng),
    Subject: rng.pick(SUBJECTS),
    Verdict: rng.pick(['Phish', 'Malware', 'Spam']),
    OriginalDeliveryLocation: rng.pick(['Inbox/folder', 'Junk', 'Quarantine']),
  });
  return r;
}

function copilotRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const r = common(c, { recordType: 261, operation: 'CopilotInteraction', workload: 'Copilot', userKey: c.user.objectId, clientIp: clientIp(rng) });
  const site = `https://${c.t.domain.split('.')[0]}.sharepoint.com/sites/Finance`;
  Object.assign(r, {
    AppIdentity: rng.pick(['Copilot.MicrosoftCopilot.Teams', 'Copilot.MicrosoftCopilot.Word', 'Copilot.BizChat']),
    CopilotEventData: {
      AppHost: rng.pick(['Teams', 'Word', 'Office']),
      Contexts: [{ Id: `${site}/Shared Documents/${rng.pick(FILES)}`, Type: 'docx' }],
      MessageIds: [],
      Messages: [
        { Id: String(rng.int(1_700_000_000_000, 1_800_000_000_000)), isPrompt: true },
        { Id: String(rng.int(1_700_000_000_000, 1_800_000_000_000)), isPrompt: false },
      ],
      ThreadId: `19:${rng.hex(32)}@thread.v2`,
      AccessedResources: [{ Id: rng.guid(), Name: rng.pick(FILES), SiteUrl: site, Type: 'File', Action: 'Read', SensitivityLabelId: rng.chance(0.5) ? rng.guid() : null }],
      AISystemPlugin: [],
      ModelTransparencyDetails: [{ ModelName: 'GPT-4o' }],
    },
  });
  return r;
}

function powerAppsRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const appName = rng.guid();
  const r = common(c, { recordType: 45, operation: rng.pick(['LaunchPowerApp', 'CreatePowerApp', 'PowerAppPermissionEdited']), workload: 'PowerApps', userKey: c.user.objectId, resultStatus: 'Success', objectId: appName });
  Object.assign(r, {
    AdditionalInfo: JSON.stringify({ environmentName: `Default-${c.t.tenantId}`, appName, appDisplayName: rng.pick(['Expense tracker', 'Gestión de inventario', 'Visitor sign-in 👋']), userAgent: rng.pick(USER_AGENTS) }),
    AppName: appName,
    EnvironmentName: `Default-${c.t.tenantId}`,
  });
  return r;
}

function streamRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const r = common(c, { recordType: 32, operation: rng.pick(['StreamInvokeVideoView', 'StreamCreateVideo']), workload: 'MicrosoftStream', userKey: c.user.objectId, clientIp: clientIp(rng), objectId: rng.guid() });
  Object.assign(r, { ResourceTitle: rng.pick(['All-hands Q2', 'Onboarding — semaine 1', '研修ビデオ']), ResourceUrl: `https://web.microsoftstream.com/video/${rng.guid()}`, UserAgent: rng.pick(USER_AGENTS) });
  return r;
}

function generalRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const gen = rng.weighted([
    [teamsRecord, 5],
    [powerBiRecord, 3],
    [yammerRecord, 1],
    [flowRecord, 1],
    [formsRecord, 1],
    [sccAlertRecord, 1],
    [threatIntelRecord, 2],
    [copilotRecord, 2],
    [powerAppsRecord, 1],
    [streamRecord, 1],
  ] as const);
  const r = gen(c);
  // ~3% of Audit.General (≈1% of everything) lacks Workload, as some real records do (fixtures).
  if (rng.chance(0.03)) delete r['Workload'];
  return r;
}

// ---------------------------------------------------------------- DLP.All

const SIT = [
  ['50842eb7-edc8-4019-85dd-5a5c1f2bb085', 'Credit Card Number', '4111 1111 1111 1111'],
  ['a44669fe-0d48-453d-a9b1-2cc83f2cba77', 'U.S. Social Security Number (SSN)', '078-05-1120'],
  ['e7dc4711-11b7-4cb0-b88b-2c394a771f0e', 'International Banking Account Number (IBAN)', 'FR76 3000 6000 0112 3456 7890 189'],
] as const;

function dlpRecord(c: Ctx): AuditRecord {
  const rng = c.t.rng;
  const workload = rng.weighted([
    ['Exchange', 3],
    ['SharePoint', 2],
    ['OneDrive', 2],
  ] as const);
  const exchange = workload === 'Exchange';
  const op = rng.weighted([
    ['DlpRuleMatch', 8],
    ['DlpRuleUndo', 1],
    ['DlpInfo', 1],
  ] as const);
  const [sitId, sitName, sample] = rng.pick(SIT);
  const file = rng.pick(FILES);
  const objectId = exchange ? messageId(rng, c.t.domain) : `https://${c.t.domain.split('.')[0]}.sharepoint.com/sites/Finance/Shared Documents/${file}`;
  const r = common(c, { recordType: exchange ? 13 : 11, operation: op, workload, userKey: 'DlpAgent', userType: 4, objectId });
  const policyDetails = [
    {
      PolicyId: rng.guid(),
      PolicyName: rng.pick(['U.S. Financial Data', 'GDPR — données personnelles', 'PCI DSS']),
      Rules: [
        {
          Actions: rng.pick([['NotifyUser'], ['BlockAccess', 'NotifyUser', 'GenerateIncidentReport'], []]),
          ConditionsMatched: {
            ConditionMatchedInNewScheme: true,
            OtherConditions: [],
            SensitiveInformation: [
              {
                ClassifierType: 'Content',
                Confidence: rng.pick([65, 75, 85]),
                Count: rng.int(1, 40),
                Location: null,
                SensitiveInformationDetailedClassificationAttributes: [{ Confidence: 85, Count: 1, IsMatch: true }],
                SensitiveInformationDetections: {
                  DetectedValues: [{ Name: sitName, Value: sample }],
                  ResultsTruncated: false,
                },
                SensitiveInformationTypeName: sitName,
                SensitiveType: sitId,
                UniqueCount: 1,
              },
            ],
          },
          ManagementRuleId: rng.guid(),
          RuleId: rng.guid(),
          RuleMode: 'Enable',
          RuleName: rng.pick(['Low volume of content detected', 'High volume of content detected']),
          Severity: rng.pick(['Low', 'Medium', 'High']),
        },
      ],
    },
  ];
  r['IncidentId'] = rng.guid();
  r['PolicyDetails'] = op === 'DlpInfo' ? [] : policyDetails;
  r['SensitiveInfoDetectionIsIncluded'] = true;
  if (exchange) {
    r['ExchangeMetaData'] = {
      BCC: [],
      CC: rng.chance(0.5) ? [rng.pick(c.t.users).upn] : [],
      FileSize: rng.int(10_000, 30_000_000),
      From: c.user.upn,
      MessageID: objectId,
      RecipientCount: rng.int(1, 12),
      Sent: `${creationTime(c.ms - 2000)}`,
      Subject: rng.pick(SUBJECTS),
      To: [`someone@${rng.pick(['gmail.com', 'example.org'])}`],
      UniqueID: rng.guid(),
    };
  } else {
    r['SharePointMetaData'] = {
      ExceptionInfo: {},
      FileID: rng.guid(),
      FileName: file,
      FileOwner: c.user.name,
      FilePathUrl: objectId,
      From: c.user.upn,
      IsViewableByExternalUsers: rng.chance(0.2),
      IsVisibleOnlyToOdbOwner: false,
      ItemCreationTime: creationTime(c.ms - rng.int(1, 200) * 86_400_000),
      ItemLastModifiedTime: creationTime(c.ms - 5000),
      ItemLastSharedTime: null,
      SensitivityLabelIds: [],
      SiteAdmin: [c.user.upn],
      SiteCollectionGuid: rng.guid(),
      SiteCollectionUrl: `https://${c.t.domain.split('.')[0]}.sharepoint.com/sites/Finance`,
      UniqueID: rng.guid(),
    };
  }
  return r;
}

// ---------------------------------------------------------------- driver

const GENERATORS: Record<ContentType, (c: Ctx) => AuditRecord> = {
  'Audit.AzureActiveDirectory': aadRecord,
  'Audit.Exchange': exchangeRecord,
  'Audit.SharePoint': (c) => sharePointRecord(c),
  'Audit.General': generalRecord,
  'DLP.All': dlpRecord,
};

/** Audit.General is usually the largest feed (reference §6). */
const CONTENT_TYPE_WEIGHTS: readonly (readonly [ContentType, number])[] = [
  ['Audit.General', 35],
  ['Audit.SharePoint', 25],
  ['Audit.Exchange', 18],
  ['Audit.AzureActiveDirectory', 15],
  ['DLP.All', 7],
];

/** A blob ready for the store: when it was created and listed, and its rendered body. */
export interface PlannedBlob {
  contentType: ContentType;
  createdMs: number;
  availableAt: number;
  body: BlobBody;
}

export interface SyntheticOptions extends ScheduleOptions {
  seed: number;
  records: number;
  tenantId: string;
  duplicateFraction?: number;
}

function makeTenant(rng: Rng, tenantId: string): Tenant {
  const domain = `${rng.pick(TENANT_NAMES)}.onmicrosoft.com`;
  const users: User[] = PEOPLE.map(([name, local]) => ({
    name,
    upn: `${local}@${domain}`,
    objectId: rng.guid(),
    puid: puid(rng),
  }));
  return { rng, tenantId, domain, users, ids: new Set() };
}

/** Region suffix of contentIds, fixed per seed. */
export function regionForSeed(seed: number): string {
  return new Rng(seed ^ 0x5eed).pick(REGIONS);
}

/**
 * Generate the synthetic tenant's blobs. Deterministic for (seed, records, tenantId, schedule).
 * Each record's CreationTime is a few seconds to an hour before its blob's contentCreated; about 0.5%
 * are days older (reference §4 "Latency": blobs can carry events days old). Each blob is rendered
 * to its body as soon as its records exist, and the objects dropped: only bytes are kept.
 */
export function generateSynthetic(o: SyntheticOptions): PlannedBlob[] {
  const root = new Rng(o.seed);
  const tenant = makeTenant(root.fork('tenant'), o.tenantId);
  const shapeRng = root.fork('blobs');
  const sizes: { contentType: ContentType; size: number }[] = [];
  let remaining = Math.max(0, Math.floor(o.records));
  while (remaining > 0) {
    const size = Math.min(remaining, blobSize(shapeRng));
    sizes.push({ contentType: shapeRng.weighted(CONTENT_TYPE_WEIGHTS), size });
    remaining -= size;
  }
  const times = planBlobTimes(root.fork('times'), sizes.length, o);
  const recRng = tenant.rng;
  const blobs = sizes.map(({ contentType, size }, i): PlannedBlob => {
    const { createdMs, availableAt } = times[i]!;
    const parts: string[] = [];
    for (let k = 0; k < size; k++) {
      const ageMs = recRng.chance(0.005) ? recRng.int(1, 4) * 86_400_000 + recRng.int(0, 86_399_999) : recRng.int(3_000, 3_600_000);
      const ctx: Ctx = { t: tenant, ms: createdMs - ageMs, user: recRng.pick(tenant.users) };
      parts.push(JSON.stringify(GENERATORS[contentType](ctx)));
    }
    return { contentType, createdMs, availableAt, body: { bytes: jsonArrayBytes(parts), count: size } };
  });
  if (o.duplicateFraction) addRedeliveries(blobs, root.fork('duplicates'), o.duplicateFraction);
  return blobs;
}

/**
 * `[a,b,…]` as UTF-8, the record texts encoded one by one: a record without non-ASCII characters
 * is a one-byte string that encodes fast, where joining first would make one two-byte string of
 * the whole blob (measured: about 5× slower to encode).
 */
function jsonArrayBytes(parts: readonly string[]): Buffer {
  let length = 1 + Math.max(1, parts.length);
  for (const p of parts) length += Buffer.byteLength(p, 'utf8');
  const out = Buffer.allocUnsafe(length);
  let at = 0;
  out[at++] = 0x5b; // [
  parts.forEach((p, i) => {
    if (i > 0) out[at++] = 0x2c; // ,
    at += out.write(p, at, 'utf8');
  });
  out[at++] = 0x5d; // ]
  return at === length ? out : out.subarray(0, at);
}

/**
 * Re-deliver a few records of an earlier blob (same content type) in a later one. The records are
 * copied from the earlier body (parsed and re-serialised: JSON.stringify output round-trips to the
 * same bytes), so they carry the same Id and values.
 */
function addRedeliveries(blobs: PlannedBlob[], rng: Rng, fraction: number): void {
  const byTime = [...blobs].sort((a, b) => a.createdMs - b.createdMs);
  const seen = new Map<ContentType, PlannedBlob[]>();
  for (const b of byTime) {
    const earlier = seen.get(b.contentType) ?? [];
    if (earlier.length > 0 && rng.next() < fraction) {
      const src = rng.pick(earlier);
      const n = rng.int(1, Math.min(5, src.body.count));
      const from = rng.int(0, src.body.count - n);
      const copies = (JSON.parse(src.body.bytes.toString('utf8')) as AuditRecord[]).slice(from, from + n).map((r) => JSON.stringify(r));
      const own = b.body.bytes.subarray(0, b.body.bytes.length - 1); // without the closing ']'
      b.body = { bytes: Buffer.concat([own, Buffer.from(`,${copies.join(',')}]`, 'utf8')]), count: b.body.count + n };
    }
    earlier.push(b);
    seen.set(b.contentType, earlier);
  }
}

/**
 * Spread corpus records (grouped per content type, order kept) over the span like synthetic ones;
 * each body keeps the corpus lines byte for byte (corpus.ts).
 */
export function planCorpus(
  records: AuditRecord[],
  seed: number,
  schedule: ScheduleOptions,
  classify: (r: AuditRecord) => ContentType,
): PlannedBlob[] {
  const rng = new Rng(seed).fork('corpus');
  const groups = new Map<ContentType, AuditRecord[]>();
  for (const r of records) {
    const ct = classify(r);
    let g = groups.get(ct);
    if (!g) groups.set(ct, (g = []));
    g.push(r);
  }
  const out: PlannedBlob[] = [];
  for (const [contentType, recs] of groups) {
    const chunks: AuditRecord[][] = [];
    for (let i = 0; i < recs.length; ) {
      const n = blobSize(rng);
      chunks.push(recs.slice(i, i + n));
      i += n;
    }
    // Earlier corpus lines go to earlier blobs, as a real feed would deliver them.
    const times = planBlobTimes(rng, chunks.length, schedule).sort((a, b) => a.createdMs - b.createdMs);
    chunks.forEach((chunk, i) => out.push({ contentType, createdMs: times[i]!.createdMs, availableAt: times[i]!.availableAt, body: renderRecords(chunk) }));
  }
  return out;
}
